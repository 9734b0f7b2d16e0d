"""The real default configuration (128 px, edge backbone, windows of 24), one epoch. Slow."""

from __future__ import annotations

import json

import pytest

from training_helpers import write_cache


@pytest.mark.slow
def test_default_config_trains_one_epoch(tmp_path):
    from ich_edge.training.model import ModelConfig
    from ich_edge.training.run import load_run
    from ich_edge.training.train import TrainConfig, train

    cache = write_cache(tmp_path / "cache", num_studies=10, num_slices=30, size_px=128)
    report = train(cache.root, tmp_path / "RUN", TrainConfig(epochs=1), log=lambda line: None)
    assert report["run"]["epochs_run"] == 1
    config = json.loads((tmp_path / "RUN" / "config.json").read_text())
    assert config["model"] == ModelConfig().to_dict()
    assert config["sequence"]["window_slices"] == 24
    run = load_run(tmp_path / "RUN")
    assert run.encoder.input_shape == (None, 128, 128, 3)
    assert report["run"]["mean_epoch_seconds"] > 0
