"""A tiny RUN_DIR (untrained 32 px CNN-LSTM, thresholds, split) and cache for the parity tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.cache import Cache, CachedSeries
from ich_edge.fileio import write_json_atomic
from ich_edge.sequence import SequenceConfig
from ich_edge.transforms import PreprocessConfig

SIZE_PX, WINDOW, STRIDE = 32, 4, 2
NUM_STUDIES = 12


def _series(rng: np.random.Generator, study: int) -> CachedSeries:
    num_slices = int(rng.integers(3, 9))  # some studies shorter than a window: padding path
    images = rng.integers(0, 80, (num_slices, SIZE_PX, SIZE_PX, 3), dtype=np.uint8)
    labels = np.zeros((num_slices, len(LABELS)), np.int8)
    if study % 2:
        subtype = study % 5
        labels[: max(1, num_slices // 2), [subtype, 5]] = 1
        images[: max(1, num_slices // 2), 8:16, 8:24, :] = 240
    return CachedSeries(
        f"1.2.826.0.1.{study}.1", f"1.2.826.0.1.{study}", images, labels, labels.max(axis=0),
        tuple(f"ID_{study:04x}{k:03x}" for k in range(num_slices)),
    )


def _rescale(layer, factor: float, bias: bool = True) -> None:
    kernel, offset = layer.get_weights()
    layer.set_weights([kernel * factor, offset * factor if bias else offset])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``(run_dir, cache_dir, split)``: a RUN_DIR as `ich-edge train` writes it, untrained weights."""
    from ich_edge.training import run as run_lib
    from ich_edge.training.evaluate import predict_series
    from ich_edge.training.keras import keras
    from ich_edge.training.model import ModelConfig, build_model

    root = tmp_path_factory.mktemp("parity")
    preprocess = PreprocessConfig(input_size_px=SIZE_PX)
    cache = Cache.create(root / "cache", preprocess)
    rng = np.random.default_rng(0)
    series = [_series(rng, study) for study in range(NUM_STUDIES)]
    for item in series:
        cache.write(item)
    model_config = ModelConfig(input_size_px=SIZE_PX, width=0.25, feature_dim=8, rnn_units=4)
    sequence = SequenceConfig(WINDOW, STRIDE)
    keras.utils.set_random_seed(0)
    encoder, head, model = build_model(model_config, WINDOW)
    # Untrained, BatchNorm's moving statistics are 0/1 and features are ~1e-6: outputs sit
    # within 1e-6 of 0.5. Let BatchNorm learn the statistics of the data (no weight update)
    # and spread the logits (std ~2), so AUCs, thresholds and decisions mean something and
    # precisions behave as on a trained model.
    images = np.concatenate([s.images for s in series]).astype(np.float32) / 255.0
    for _ in range(60):
        encoder(images, training=True)
    probe = np.concatenate([predict_series(encoder, head, s.images, sequence) for s in series])
    _rescale(head.get_layer("probabilities"), 2.0 / max(float(np.log(probe / (1.0 - probe)).std()), 1e-12), bias=False)
    run_dir = root / "run"
    run_dir.mkdir()
    model.save(run_dir / run_lib.MODEL_FILE)
    uids = [s.study_uid for s in series]  # study k bleeds when k is odd: both sides get both kinds
    val = sorted(uids[k] for k in (0, 1, 3, 4, 7, 10))
    split = {"seed": 0, "val_fraction": 0.5, "train_studies": sorted(set(uids) - set(val)), "val_studies": val}
    write_json_atomic(run_dir / run_lib.SPLIT_FILE, split)
    write_json_atomic(run_dir / run_lib.CONFIG_FILE, {
        "quantized": False,
        "labels": list(LABELS),
        "model": model_config.to_dict(),
        "sequence": sequence.to_dict(),
        "preprocess": preprocess.to_dict(),
    })
    # Thresholds in the middle of the reference's own scores, so decisions go both ways.
    scores = [predict_series(encoder, head, s.images, sequence) for s in series]
    slice_t = np.median(np.concatenate(scores), axis=0)
    study_t = np.median(np.stack([s.max(axis=0) for s in scores]), axis=0)
    run_lib.write_thresholds(run_dir, 0.9, dict(zip(LABELS, slice_t)), dict(zip(LABELS, study_t)))
    return run_dir, root / "cache", split


_LOADED: dict = {}


class KerasAsTFLite:
    """Stands in for TFLiteStudyModel in orchestration tests: the run's own Keras model.

    ``invert`` lists labels whose probabilities are replaced by ``1 - p``: a variant that
    must fail. The real comparison against converted files is the slow end-to-end test.
    """

    def __init__(self, path, num_threads: int = 2, use_xnnpack: bool = True) -> None:
        from ich_edge.training.parity import load_reference

        self.path = Path(path)
        spec = json.loads(self.path.read_text())
        if spec["run"] not in _LOADED:
            _LOADED[spec["run"]] = load_reference(spec["run"])
        self.run = _LOADED[spec["run"]]
        self.invert = spec.get("invert", [])
        self.description = {
            "precision": spec["precision"],
            "sequence": self.run.sequence_config.to_dict(),
            "preprocessing": self.run.preprocess_config.to_dict(),
            "thresholds": self.run.thresholds,
        }
        self.precision = spec["precision"]
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()

    def predict_series(self, images):
        from ich_edge.training.evaluate import predict_series

        probs = predict_series(self.run.encoder, self.run.head, images, self.run.sequence_config)
        for label in self.invert:
            probs[:, LABELS.index(label)] = 1.0 - probs[:, LABELS.index(label)]
        return probs


@pytest.fixture
def keras_as_tflite():
    """The :class:`KerasAsTFLite` stand-in (a fixture: test modules cannot import conftest reliably)."""
    return KerasAsTFLite
