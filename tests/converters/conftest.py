"""A tiny cache and float RUN_DIR (4-slice 32x32 studies, untrained 32 px CNN-LSTM) for the converter tests."""

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
NUM_STUDIES = 8
MODEL_FIELDS = dict(input_size_px=SIZE_PX, width=0.25, feature_dim=8, rnn_units=4)


def make_series(rng: np.random.Generator, study: int) -> CachedSeries:
    """Head-CT-like value ranges: air 0 and bone 255 somewhere in every slice, a bright patch if bleeding."""
    num_slices = 3 if study == 0 else 4 + study % 3  # study 0 is shorter than a window (padding)
    images = rng.integers(20, 90, (num_slices, SIZE_PX, SIZE_PX, 3), dtype=np.uint8)
    images[:, :2] = 0
    images[:, -2:] = 255
    labels = np.zeros((num_slices, len(LABELS)), np.int8)
    if study % 2:
        labels[1:3, [study % 5, 5]] = 1
        images[1:3, 10:18, 8:24, 0] = 230
    return CachedSeries(
        f"1.2.826.0.9.{study}.1", f"1.2.826.0.9.{study}", images, labels, labels.max(axis=0),
        tuple(f"ID_{study:04x}{k:03x}" for k in range(num_slices)),
    )


def write_cache(root: Path) -> list[CachedSeries]:
    cache = Cache.create(root, PreprocessConfig(input_size_px=SIZE_PX))
    rng = np.random.default_rng(0)
    series = [make_series(rng, study) for study in range(NUM_STUDIES)]
    for item in series:
        cache.write(item)
    return series


def write_run(run_dir: Path, series: list[CachedSeries], seed: int = 0, **model_fields) -> Path:
    """A float RUN_DIR in the layout `ich-edge train` writes, with untrained weights.

    ``model_fields`` override :data:`MODEL_FIELDS` (e.g. ``rnn="gru"``).
    """
    from ich_edge.training import run as run_lib
    from ich_edge.training.keras import keras
    from ich_edge.training.model import ModelConfig, build_model

    model_config = ModelConfig(**{**MODEL_FIELDS, **model_fields})
    sequence = SequenceConfig(WINDOW, STRIDE)
    keras.utils.set_random_seed(seed)
    _, _, model = build_model(model_config, WINDOW)
    run_dir.mkdir(parents=True)
    model.save(run_dir / run_lib.MODEL_FILE)
    uids = sorted({s.study_uid for s in series})
    val = uids[:2] + uids[-2:]  # both bleeding and clean studies on each side
    write_json_atomic(run_dir / run_lib.SPLIT_FILE, {
        "seed": 0, "val_fraction": 0.5, "train_studies": [u for u in uids if u not in val], "val_studies": val,
    })
    write_json_atomic(run_dir / run_lib.CONFIG_FILE, {
        "quantized": False,
        "labels": list(LABELS),
        "model": model_config.to_dict(),
        "sequence": sequence.to_dict(),
        "preprocess": PreprocessConfig(input_size_px=SIZE_PX).to_dict(),
        "train": {"epochs": 1, "batch_size": 2, "learning_rate": 1e-3, "rotation_deg": 0.0, "shift_fraction": 0.0},
        "data": {"cache": "tiny", "series": len(series), "train_studies": len(uids) - len(val), "val_studies": len(val)},
    })
    run_lib.write_thresholds(run_dir, 0.9, {label: 0.5 for label in LABELS}, {label: 0.5 for label in LABELS})
    return run_dir


@pytest.fixture
def make_run():
    """:func:`write_run` for tests that need a run of another shape (e.g. ``rnn="gru"``)."""
    return write_run


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """``(cache_dir, series, run_dir)``."""
    root = tmp_path_factory.mktemp("converters")
    series = write_cache(root / "cache")
    return root / "cache", series, write_run(root / "run", series)


@pytest.fixture(scope="session")
def calibrated(tiny_data, tmp_path_factory):
    """``(calibrated graph bytes, calibration set)`` of the tiny run."""
    from converters.calibration import calibration_set, representative_dataset
    from converters.graph import save_deployable
    from converters.layers import calibrate
    from converters.recipe import ConvertOptions
    from ich_edge.training.run import load_run

    _, series, run_dir = tiny_data
    run = load_run(run_dir)
    saved = save_deployable(run.encoder, run.head, run.sequence_config.window_slices, tmp_path_factory.mktemp("saved") / "m")
    calibration = calibration_set(run.encoder, series, run.sequence_config, 8, 0)
    return calibrate(saved, ConvertOptions(representative_dataset=representative_dataset(calibration))), calibration
