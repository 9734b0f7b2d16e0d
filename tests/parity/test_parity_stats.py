"""The paired study bootstrap, the per-label comparison and the gates, on synthetic scores."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.errors import ConfigError
from ich_edge.metrics import roc_auc
from ich_edge.training.parity import Level, ParityConfig, ParityGates, compare_level, recipe_gates
from ich_edge.training.parity.gates import DEPLOYMENT_GATES, EvidenceRule, assess_evidence, check_gates, combine
from ich_edge.training.parity.stats import bootstrap_level, study_weights, weighted_auc


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
    y = (rng.random((n, len(LABELS))) < 0.15).astype(np.int64)  # "any" about half the studies, as in the demo
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


def _evidence(y, **rule):
    return assess_evidence(EvidenceRule(**rule), y)


def test_identical_model_passes_every_gate():
    y, reference = _scores(120)
    result = compare_level(_level(y, reference, [reference.copy()]), THRESHOLDS, [THRESHOLDS], 50, 0)
    entry = result["variants"][0]["labels"]["subdural"]
    assert entry["max_abs_diff"] == 0 and entry["agreement"] == 1.0 and entry["auc_delta"] == 0
    assert entry["auc_delta_ci95"] == [0.0, 0.0] and entry["lost_detections"] == 0
    assert entry["sensitivity"] == entry["reference_sensitivity"] > 0
    assert result["reference"]["labels"]["subdural"]["auc"] == pytest.approx(entry["auc"])
    gates = ParityGates(max_abs_diff=1e-4, max_auc_drop=0.005, min_agreement=0.99)
    study = result["variants"][0]
    for g in (gates, DEPLOYMENT_GATES):
        assert check_gates("m", g, study, study, _evidence(y)) == {"verdict": "PASS", "failures": [], "not_evaluable": [], "warnings": []}


def test_gates_name_the_failing_label():
    y, reference = _scores(150)
    variant = reference.copy()
    sdh = LABELS.index("subdural")
    variant[:, sdh] = np.random.default_rng(5).random(len(y))  # subdural ruined, others intact
    result = compare_level(_level(y, reference, [variant]), THRESHOLDS, [THRESHOLDS], 100, 0)
    study = result["variants"][0]
    gates = ParityGates(max_auc_drop=0.005, min_agreement=0.99)
    judged = check_gates("cnn_lstm_int8.tflite (int8)", gates, study, study, _evidence(y))
    failures = judged["failures"]
    assert judged["verdict"] == "FAIL" and judged["not_evaluable"] == []
    assert len(failures) == 2
    assert failures[0].startswith("cnn_lstm_int8.tflite (int8): subdural study AUC drop")
    assert "paired 95% CI of the change" in failures[0]
    assert "subdural study decision agreement" in failures[1] and "positive decisions lost" in failures[1]
    deployment = check_gates("d", DEPLOYMENT_GATES, study, study, _evidence(y))["failures"]
    assert len(deployment) == 4 and all(line.startswith("d: subdural ") for line in deployment)
    assert "study AUC drop not bounded" in deployment[1] and "bleeding studies flagged by the reference are missed" in deployment[3]
    fp32 = check_gates("x (fp32)", ParityGates(max_abs_diff=1e-4), study, study, _evidence(y))["failures"]
    assert fp32 and all(" subdural " in line and "max |p - p_ref|" in line for line in fp32)


def test_lost_detections_count_only_truly_positive_studies():
    y = np.zeros((40, len(LABELS)), np.int64)
    y[:10, :] = 1
    reference = np.where(y == 1, 0.9, 0.1)
    variant = reference.copy()
    variant[:2, 0] = 0.2  # two bleeding studies the reference flags, missed: lost detections
    variant[20:25, 0] = 0.05  # already negative: nothing changes
    variant[30:33, 0] = 0.95  # three new false alarms: decisions change, no detection lost
    result = compare_level(_level(y, reference, [variant]), THRESHOLDS, [THRESHOLDS], 0, 0)
    edh = result["variants"][0]["labels"]["epidural"]
    assert (edh["lost_detections"], edh["lost_positives"], edh["new_positives"]) == (2, 2, 3)
    assert edh["sensitivity"] == pytest.approx(0.8) and edh["reference_sensitivity"] == 1.0
    assert edh["specificity"] == pytest.approx(27 / 30) and edh["agreement"] == pytest.approx(35 / 40)


def test_a_label_short_of_evidence_is_not_evaluable_and_the_verdict_insufficient():
    y, reference = _scores(120)
    y[:, 0] = 0
    y[:3, 0] = 1  # 3 epidural studies: below the 5 a gated label needs
    result = compare_level(_level(y, reference, [reference]), THRESHOLDS, [THRESHOLDS], 20, 0)
    study = result["variants"][0]
    evidence = _evidence(y)
    assert not evidence["sufficient"] and evidence["reasons"] == ["epidural: 3 positive studies < 5"]
    judged = check_gates("m", ParityGates(max_auc_drop=0.005), study, study, evidence)
    assert judged["verdict"] == "INSUFFICIENT" and judged["failures"] == []
    assert judged["not_evaluable"] == ["m: epidural not evaluable (3 positive studies < 5)"]
    narrowed = _evidence(y, gated_labels=("any", "subdural"))
    assert narrowed["sufficient"] and check_gates("m", ParityGates(max_auc_drop=0.005), study, study, narrowed)["verdict"] == "PASS"
    few = _evidence(y[:10])
    assert few["reasons"] == ["10 held-out studies < the 20 a verdict needs"]
    assert check_gates("m", ParityGates(max_abs_diff=1.0), study, study, few)["verdict"] == "INSUFFICIENT"
    assert combine(["PASS", "INSUFFICIENT"]) == "INSUFFICIENT" and combine(["INSUFFICIENT", "FAIL"]) == "FAIL"
    assert combine([]) == "PASS"


def test_gate_and_config_validation():
    with pytest.raises(ConfigError, match="min_agreement must be in"):
        ParityGates(min_agreement=99)
    with pytest.raises(ConfigError, match="--bootstrap must be >= 0"):
        ParityConfig(replicates=-1)
    with pytest.raises(ConfigError, match="--study-set must be"):
        ParityConfig(studies="train")
    with pytest.raises(ConfigError, match="max_lost_detections must be a whole number"):
        ParityConfig(deployment={"max_lost_detections": -1})
    with pytest.raises(ConfigError, match="unknown deployment gate"):
        ParityConfig(deployment={"max_abs_diff": 0.1})
    with pytest.raises(ConfigError, match="--gated-labels takes labels among"):
        EvidenceRule(gated_labels=("anything",))
    with pytest.raises(ConfigError, match="--min-studies must be >= 1"):
        EvidenceRule(min_studies=0)
    assert ParityConfig(deployment={"min_agreement": 0.9}).deployment_gates.min_agreement == 0.9

    class Recipe:
        name = "fp16"
        parity = {"max_auc_drop": 0.005, "min_agreement": 0.99}

    assert recipe_gates(Recipe()) == ParityGates(None, 0.005, 0.99)

    class NoGates:
        name = "odd"

    with pytest.raises(ConfigError, match="has no parity gates"):
        recipe_gates(NoGates())


def test_evidence_of_a_label_subset_gates_only_the_models_labels():
    y = np.zeros((30, 2), np.int64)
    y[:10, 0] = 1
    y[:3, 1] = 1
    evidence = assess_evidence(EvidenceRule(), y, ("intraparenchymal", "any"))
    assert list(evidence["labels"]) == ["intraparenchymal", "any"] and evidence["gated_labels"] == ["intraparenchymal", "any"]
    assert not evidence["sufficient"] and evidence["reasons"] == ["any: 3 positive studies < 5"]
    with pytest.raises(ConfigError, match="names none of the model's labels \\(intraparenchymal, any\\)"):
        assess_evidence(EvidenceRule(gated_labels=("subdural",)), y, ("intraparenchymal", "any"))
