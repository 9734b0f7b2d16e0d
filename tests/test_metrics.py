import numpy as np
import pytest

from ich_edge import metrics


def _mann_whitney_auc(y, s):
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return ((pos > neg) + 0.5 * (pos == neg)).mean()


def test_roc_auc_matches_mann_whitney_with_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = np.round(y * 0.8 + rng.normal(0, 1, 300), 1)  # rounding makes ties
    assert metrics.roc_auc(y, s) == pytest.approx(_mann_whitney_auc(y, s), abs=1e-12)


def test_roc_auc_edge_cases():
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert metrics.roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_rsna_log_loss_weights_any_twice():
    y = np.zeros((1, 6))
    p = np.full((1, 6), 0.5)
    assert metrics.rsna_log_loss(y, p) == pytest.approx(np.log(2))
    p_bad_any = p.copy()
    p_bad_any[0, 5] = 0.9
    p_bad_sub = p.copy()
    p_bad_sub[0, 0] = 0.9
    # The same mistake costs twice as much on "any".
    extra_any = metrics.rsna_log_loss(y, p_bad_any) - np.log(2)
    extra_sub = metrics.rsna_log_loss(y, p_bad_sub) - np.log(2)
    assert extra_any == pytest.approx(2 * extra_sub)


def test_threshold_at_specificity_keeps_specificity():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 1000)
    s = y + rng.normal(0, 1, 1000)
    t = metrics.threshold_at_specificity(y, s, 0.9)
    assert (s[y == 0] < t).mean() >= 0.9
    sens = metrics.sensitivity_at_threshold(y, s, t)
    assert sens == pytest.approx(metrics.sensitivity_at_specificity(y, s, 0.9))
    assert 0.3 < sens < 0.8


def test_threshold_with_ties_never_exceeds_false_positive_budget():
    y = np.array([0] * 10 + [1] * 2)
    s = np.array([0.5] * 10 + [0.9, 0.5])
    t = metrics.threshold_at_specificity(y, s, 0.9)
    assert (s[y == 0] >= t).sum() <= 1


def test_bootstrap_ci_brackets_the_auc():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(0, 1, 200)
    low, high = metrics.bootstrap_auc_ci(y, s, n_boot=300)
    auc = metrics.roc_auc(y, s)
    assert low < auc < high
    assert high - low < 0.25


def test_rsna_log_loss_of_a_label_subset_uses_the_present_labels_weights():
    from ich_edge import LABELS
    from ich_edge.metrics import log_loss_note, rsna_weights

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (50, 6))
    p = rng.uniform(0.05, 0.95, (50, 6))
    cols = [1, 5]  # intraparenchymal, any
    per_label = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    expected = float((per_label[:, 1] * 1.0 + per_label[:, 5] * 2.0).mean() / 3.0)
    got = metrics.rsna_log_loss(y[:, cols], p[:, cols], labels=("intraparenchymal", "any"))
    assert got == pytest.approx(expected, rel=1e-12)
    assert rsna_weights(("subdural", "any")).tolist() == [1.0, 2.0]
    assert log_loss_note(LABELS) == ""
    assert "over the model's 2 labels" in log_loss_note(("intraparenchymal", "any"))
