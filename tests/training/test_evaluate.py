"""Encode-once evaluation equals running the whole CNN-LSTM on the same windows."""

from __future__ import annotations

import numpy as np
import pytest

from training_helpers import make_series
from ich_edge.sequence import SequenceConfig, gather_windows, stitch
from ich_edge.training import evaluate
from ich_edge.training.model import ModelConfig, build_model

TINY = ModelConfig(input_size_px=32, width=0.25, feature_dim=8, rnn_units=4, dropout=0.0)


@pytest.fixture(scope="module")
def tiny_model():
    return build_model(TINY, window_slices=4)


@pytest.mark.parametrize("num_slices", [3, 4, 9])  # shorter than a window (padded), exact, several windows
def test_predict_series_matches_whole_model(tiny_model, num_slices):
    encoder, head, model = tiny_model
    config = SequenceConfig(window_slices=4, stride_slices=2)
    images = np.random.default_rng(num_slices).integers(0, 256, (num_slices, 32, 32, 3), dtype=np.uint8)
    windows = gather_windows(images, config).astype(np.float32) / 255.0
    expected = stitch(model.predict(windows, verbose=0), num_slices, config)
    got = evaluate.predict_series(encoder, head, images, config, batch_slices=2)
    assert got.shape == (num_slices, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_predict_series_accepts_plain_callables(tiny_model):
    encoder, head, _ = tiny_model
    config = SequenceConfig(4, 2)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    calls = []

    def encode(x):
        calls.append(len(x))
        return encoder(x, training=False).numpy()

    got = evaluate.predict_series(encode, lambda w: head(w, training=False).numpy(), images, config, batch_slices=4)
    np.testing.assert_allclose(got, evaluate.predict_series(encoder, head, images, config), atol=1e-6)
    assert calls == [4, 2]  # each slice encoded once


def test_evaluate_metrics_and_study_aggregation(tiny_model):
    encoder, head, _ = tiny_model
    rng = np.random.default_rng(0)
    series = [make_series(rng, study, k, 5) for study in range(6) for k in range(2)]
    out = evaluate.evaluate(encoder, head, series, SequenceConfig(4, 2), n_boot=20)
    assert out["study"]["n"] == 6  # two series per study -> one row per study
    assert out["slice"]["n"] == 60
    assert set(out["study"]["auc"]) == {"epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"}
    assert out["study"]["positives"]["any"] == 3
    assert 0.0 <= out["study"]["auc"]["any"] <= 1.0
    low, high = out["study"]["auc_ci95"]["any"]
    assert low <= high
    assert out["slice"]["rsna_log_loss"] > 0


def test_level_metrics_known_values_and_thresholds():
    y = np.zeros((10, 6), int)
    y[7:, :] = 1
    scores = np.tile(np.linspace(0, 1, 10)[:, None], (1, 6))
    out = evaluate.level_metrics(y, scores, specificity=0.9, thresholds={label: 0.5 for label in evaluate.LABELS})
    assert out["auc"]["any"] == pytest.approx(1.0)
    assert out["sensitivity_at_specificity"]["any"] == pytest.approx(1.0)
    assert out["at_thresholds"]["any"]["sensitivity"] == pytest.approx(1.0)
    assert out["at_thresholds"]["any"]["specificity"] == pytest.approx(5 / 7)
    y[:, 0] = 0
    assert evaluate.level_metrics(y, scores)["auc"]["epidural"] is None  # one class only
