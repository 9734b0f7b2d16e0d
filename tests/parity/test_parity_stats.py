"""The paired study bootstrap, the per-label comparison and the gates, on synthetic scores."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.errors import ConfigError
from ich_edge.metrics import roc_auc
from ich_edge.training.parity import Level, ParityConfig, ParityGates, check_gates, compare_level, recipe_gates
from ich_edge.training.parity_stats import bootstrap_level, study_weights, weighted_auc


def test_weighted_auc_equals_roc_auc_on_resampled_rows():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    s = np.round(rng.random(40), 1)  # many ties
    draws = rng.integers(0, 40, (5, 40))
    weights = np.stack([np.bincount(d, minlength=40) for d in draws]).astype(float)
    expected = [roc_auc(y[d], s[d]) for d in draws]
    np.testing.assert_allclose(weighted_auc(y, s, weights), expected, rtol=0, atol=1e-12)
    assert np.isnan(weighted_auc(np.zeros(5), s[:5], np.ones((1, 5))))[0]
    assert np.isnan(weighted_auc(np.zeros(0), np.zeros(0), np.ones((2, 0)))).all()


def test_study_weights_draw_whole_studies():
    groups = np.array([0, 0, 0, 1, 2, 2])
    chunks = list(study_weights(groups, 3, 150, seed=1))
    assert [c.shape for c in chunks] == [(100, 6), (50, 6)]
    for chunk in chunks:
        # all slices of a study share its draw count; every replicate draws 3 studies
        assert (chunk[:, 0] == chunk[:, 1]).all() and (chunk[:, 1] == chunk[:, 2]).all()
        assert (chunk[:, 4] == chunk[:, 5]).all()
        assert (chunk[:, [0, 3, 4]].sum(axis=1) == 3).all()


def _scores(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, len(LABELS)))
    y[:, -1] = y[:, :-1].max(axis=1)
    reference = np.clip(0.35 + 0.3 * y + rng.normal(0, 0.25, y.shape), 0.001, 0.999)
    return y, reference


def test_paired_interval_is_narrower_than_the_unpaired_spread():
    y, reference = _scores(200)
    nudged = np.clip(reference + np.random.default_rng(1).normal(0, 0.01, reference.shape), 0, 1)
    boot = bootstrap_level(y, reference, [nudged], np.arange(200), 200, 300, seed=0)
    for label in LABELS:
        low, high = boot["variants"][0][label]["delta"]
        ref_low, ref_high = boot["reference"][label]
        assert low <= roc_auc(y[:, LABELS.index(label)], nudged[:, LABELS.index(label)]) - roc_auc(
            y[:, LABELS.index(label)], reference[:, LABELS.index(label)]
        ) <= high
        assert high - low < (ref_high - ref_low) / 3  # pairing removes the shared sampling noise


THRESHOLDS = {label: 0.5 for label in LABELS}


def _level(y, reference, variants):
    return Level("study", y, np.arange(len(y)), len(y), reference, variants)


def test_identical_model_passes_every_gate():
    y, reference = _scores(120)
    result = compare_level(_level(y, reference, [reference.copy()]), THRESHOLDS, [THRESHOLDS], 50, 0)
    entry = result["variants"][0]["labels"]["subdural"]
    assert entry["max_abs_diff"] == 0 and entry["agreement"] == 1.0 and entry["auc_delta"] == 0
    assert entry["auc_delta_ci95"] == [0.0, 0.0]
    assert result["reference"]["labels"]["subdural"]["auc"] == pytest.approx(entry["auc"])
    gates = ParityGates(max_abs_diff=1e-4, max_auc_drop=0.005, min_agreement=0.99)
    assert check_gates("m", gates, result["variants"][0], result["variants"][0]) == ([], [])


def test_gates_name_the_failing_label():
    y, reference = _scores(150)
    variant = reference.copy()
    sdh = LABELS.index("subdural")
    variant[:, sdh] = np.random.default_rng(5).random(len(y))  # subdural ruined, others intact
    result = compare_level(_level(y, reference, [variant]), THRESHOLDS, [THRESHOLDS], 100, 0)
    study = result["variants"][0]
    gates = ParityGates(max_auc_drop=0.005, min_agreement=0.99)
    failures, warnings = check_gates("cnn_lstm_int8.tflite (int8)", gates, study, study)
    assert warnings == []
    assert len(failures) == 2
    assert failures[0].startswith("cnn_lstm_int8.tflite (int8): subdural study AUC drop")
    assert "paired 95% CI of the change" in failures[0]
    assert "subdural study decision agreement" in failures[1] and "positive studies lost" in failures[1]
    fp32 = check_gates("x (fp32)", ParityGates(max_abs_diff=1e-4), study, study)[0]
    assert fp32 and all(" subdural " in line and "max |p - p_ref|" in line for line in fp32)


def test_auc_gate_not_evaluable_is_a_warning_not_a_pass_or_fail():
    y, reference = _scores(60)
    y[:, 0] = 0  # no epidural study
    result = compare_level(_level(y, reference, [reference]), THRESHOLDS, [THRESHOLDS], 20, 0)
    failures, warnings = check_gates("m", ParityGates(max_auc_drop=0.005), result["variants"][0], result["variants"][0])
    assert failures == []
    assert warnings == ["m: epidural study AUC gate not evaluable (the studies lack positives or negatives)"]
    assert result["reference"]["labels"]["epidural"]["auc"] is None


def test_gate_and_config_validation():
    with pytest.raises(ConfigError, match="min_agreement must be in"):
        ParityGates(min_agreement=99)
    with pytest.raises(ConfigError, match="--bootstrap must be >= 0"):
        ParityConfig(replicates=-1)
    with pytest.raises(ConfigError, match="--studies must be"):
        ParityConfig(studies="train")

    class Recipe:
        name = "fp16"
        parity = {"max_auc_drop": 0.005, "min_agreement": 0.99}

    assert recipe_gates(Recipe()) == ParityGates(None, 0.005, 0.99)

    class NoGates:
        name = "odd"

    with pytest.raises(ConfigError, match="has no parity gates"):
        recipe_gates(NoGates())
