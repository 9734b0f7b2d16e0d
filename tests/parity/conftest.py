"""A tiny RUN_DIR (untrained 32 px CNN-LSTM, thresholds, split), its cache and real converted files, for the parity tests.

The cache holds 48 studies; the run's 24 validation studies have 12 bleeding ones with three
subtypes each (7-8 positive studies per subtype), enough for the default minimum evidence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.ingest.cache import Cache, CachedSeries
from ich_edge.fileio import write_json_atomic
from ich_edge.sequence import SequenceConfig
from ich_edge.transforms import PreprocessConfig

SIZE_PX, WINDOW, STRIDE = 32, 4, 2
NUM_STUDIES = 48


def _series(rng: np.random.Generator, study: int) -> CachedSeries:
    num_slices = int(rng.integers(3, 9))  # some studies shorter than a window: padding path
    images = rng.integers(0, 80, (num_slices, SIZE_PX, SIZE_PX, 3), dtype=np.uint8)
    labels = np.zeros((num_slices, len(LABELS)), np.int8)
    if study % 2:
        subtypes = [study % 5, (study + 1) % 5, (study + 3) % 5]
        labels[: max(1, num_slices // 2), [*subtypes, 5]] = 1
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
    val = sorted(uids[k] for k in range(NUM_STUDIES) if k % 4 in (0, 1))
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


def _invert_label(src: Path, dst: Path, label: str) -> Path:
    """A copy of RUN_DIR ``src`` whose model answers ``1 - p`` for ``label`` (negated logit): a model that must fail."""
    import shutil

    from ich_edge.training import run as run_lib

    shutil.copytree(src, dst)
    run = run_lib.load_run(dst)
    layer = run.head.get_layer("probabilities")
    kernel, bias = layer.get_weights()
    kernel[:, LABELS.index(label)] *= -1
    bias[LABELS.index(label)] *= -1
    layer.set_weights([kernel, bias])
    (dst / run_lib.MODEL_FILE).unlink()
    run.model.save(dst / run_lib.MODEL_FILE)
    return dst


def _convert(run_dir: Path, out: Path, *precisions: str, data: Path | None = None) -> list[Path]:
    from ich_edge.cli import main

    args = ["convert", "--model", str(run_dir), "--out", str(out)]
    for precision in precisions:
        args += ["--precision", precision]
    code = main(args + (["--data", str(data)] if data else []))
    assert code == 0, f"convert {run_dir} {precisions} failed with exit code {code}"
    return [out / f"cnn_lstm_{p}.tflite" for p in precisions]


@pytest.fixture(scope="session")
def converted(tiny_run, tmp_path_factory):
    """Real ``.tflite`` files converted with ``ich-edge convert``.

    ``{"fp32": the tiny run's fp32 file (passes), "bad_run": a copy of the run whose model
    answers 1 - p for subdural, "bad_fp32", "bad_fp16": that run's files}``. The bad files
    say what their own Keras model says (conversion parity can pass) but not what the
    validated run says (deployment parity must fail). Reduced precisions of the untrained
    model reorder its nearly tied scores, so the file that must pass is fp32.
    """
    run_dir, _, _ = tiny_run
    root = tmp_path_factory.mktemp("converted")
    (fp32,) = _convert(run_dir, root / "good", "fp32")
    bad_run = _invert_label(run_dir, root / "bad_run", "subdural")
    bad_fp32, bad_fp16 = _convert(bad_run, root / "bad", "fp32", "fp16")
    return {"fp32": fp32, "bad_run": bad_run, "bad_fp32": bad_fp32, "bad_fp16": bad_fp16}


@pytest.fixture(scope="session")
def parity_reports(tiny_run, converted, tmp_path_factory):
    """Real ``ich-edge parity`` report.json files: ``{"pass": fp32 only, "fail": bad fp32 only, "mixed": fp32 + bad fp16}``."""
    from ich_edge.cli import main

    run_dir, cache_dir, _ = tiny_run
    root = tmp_path_factory.mktemp("reports")
    reports = {}
    for name, files, codes in (("pass", [converted["fp32"]], (0,)), ("fail", [converted["bad_fp32"]], (1,)),
                               ("mixed", [converted["fp32"], converted["bad_fp16"]], (1,))):
        args = ["parity", "--reference", str(run_dir), "--converted-from", str(converted["bad_run"]),
                "--data", str(cache_dir), "--out", str(root / f"{name}.json"), "--bootstrap", "100"]
        code = main(args + [a for f in files for a in ("--model", str(f))])
        assert code in codes, f"parity {name} exited {code}"
        reports[name] = root / f"{name}.json"
    return reports
