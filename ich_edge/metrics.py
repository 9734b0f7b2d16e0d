"""Metrics in plain numpy (runtime tier): ROC AUC, RSNA weighted log loss, operating points.

Label arrays are ``(n, K)``, columns named by ``labels`` (default :data:`ich_edge.LABELS`, the
six); ``y_true`` is 0/1. A model with a subset of the labels is scored on its own labels.
"""

from __future__ import annotations

import numpy as np

from ich_edge import LABELS

#: RSNA 2019 weight of each label: "any" counts twice, each subtype once.
RSNA_LABEL_WEIGHTS = {label: 2.0 if label == "any" else 1.0 for label in LABELS}


def rsna_weights(labels=LABELS) -> np.ndarray:
    """The RSNA weights of ``labels``, in that order (a subset keeps each label's own weight)."""
    return np.array([RSNA_LABEL_WEIGHTS[label] for label in labels], dtype=np.float64)


#: The six labels' weights in :data:`ich_edge.LABELS` order.
RSNA_WEIGHTS = rsna_weights(LABELS)


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds, thresholds descending.

    A slice is called positive when ``score >= threshold``. Tied scores form one point.
    """
    y = np.asarray(y_true, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    fpr = np.r_[0.0, fps / neg]
    tpr = np.r_[0.0, tps / pos]
    thresholds = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thresholds


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when only one class is present."""
    y = np.asarray(y_true, dtype=bool).ravel()
    if y.all() or not y.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(y, score)
    return float(np.trapezoid(tpr, fpr))


def per_label_auc(y_true: np.ndarray, score: np.ndarray, labels=LABELS) -> dict[str, float]:
    """ROC AUC per label, as ``{label: auc}``; column ``i`` is ``labels[i]``."""
    return {name: roc_auc(y_true[:, i], score[:, i]) for i, name in enumerate(labels)}


def rsna_log_loss(y_true: np.ndarray, prob: np.ndarray, eps: float = 1e-7, labels=LABELS) -> float:
    """RSNA 2019 weighted multi-label log loss (``any`` weight 2, subtypes 1), mean over rows.

    With a subset of the labels (columns named by ``labels``) it is the weighted mean over
    the present labels with their RSNA weights.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(prob, dtype=np.float64), eps, 1.0 - eps)
    per_label = -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    weights = rsna_weights(labels)
    return float((per_label * weights).sum(axis=1).mean() / weights.sum())


def log_loss_note(labels) -> str:
    """Empty for the six labels; for a subset, a clause saying the RSNA log loss covers only those (for reports)."""
    labels = list(labels)
    if set(labels) == set(LABELS):
        return ""
    weights = ", ".join(f"{label} {RSNA_LABEL_WEIGHTS[label]:g}" for label in labels)
    return f"; over the model's {len(labels)} labels with their RSNA weights ({weights}), not comparable with a six-label score"


def threshold_at_specificity(y_true: np.ndarray, score: np.ndarray, specificity: float = 0.9) -> float:
    """Lowest threshold whose specificity on ``y_true`` is at least ``specificity``."""
    y = np.asarray(y_true, dtype=bool).ravel()
    negatives = np.sort(np.asarray(score, dtype=np.float64).ravel()[~y])
    if negatives.size == 0:
        return 0.5
    # Allowed false positives: at most (1 - specificity) of the negatives score >= threshold.
    allowed = int(np.floor((1.0 - specificity) * negatives.size + 1e-9))
    if allowed == 0:
        return float(np.nextafter(negatives[-1], np.inf))
    candidate = negatives[negatives.size - allowed]
    # Negatives tied at the candidate would exceed the budget; move just above them.
    if np.count_nonzero(negatives >= candidate) > allowed:
        return float(np.nextafter(candidate, np.inf))
    return float(candidate)


def threshold_for_agreement(reference: np.ndarray, score: np.ndarray) -> float:
    """The threshold on ``score`` whose decisions agree best with the ``reference`` decisions.

    ``reference`` holds another model's decisions (bool) on the same rows, e.g. the validated
    float model's at its validated threshold. Among the thresholds with the most agreeing
    rows, the one that misses the fewest reference positives wins (a missed bleed is the
    expensive error), then the lowest; the threshold sits halfway between the two scores
    that bound its decision set, so a small numeric shift of one score (quantization) does
    not flip a decision. Returns 0.5 for empty input.
    """
    ref = np.asarray(reference, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if s.size == 0:
        return 0.5
    # decision sets: score >= cuts[k] for k < K, plus "nothing positive" (k = K); counted in one pass
    cuts, inverse = np.unique(s, return_inverse=True)
    positives_at = np.bincount(inverse, weights=ref, minlength=cuts.size)
    negatives_at = np.bincount(inverse, weights=~ref, minlength=cuts.size)
    pos_above = np.concatenate([np.cumsum(positives_at[::-1])[::-1], [0.0]])  # reference positives decided positive
    neg_below = np.concatenate([[0.0], np.cumsum(negatives_at)])  # reference negatives decided negative
    agree = pos_above + neg_below
    missed = ref.sum() - pos_above
    k = np.arange(cuts.size + 1)
    best = int(np.lexsort((k, missed, -agree))[0])  # most agreement, then fewest misses, then the lowest cut
    if best == cuts.size:
        return float(np.nextafter(cuts[-1], np.inf) if cuts[-1] >= 1.0 else (cuts[-1] + 1.0) / 2.0)
    return float(cuts[0] / 2.0 if best == 0 else (cuts[best - 1] + cuts[best]) / 2.0)


def sensitivity_at_threshold(y_true: np.ndarray, score: np.ndarray, threshold: float) -> float:
    y = np.asarray(y_true, dtype=bool).ravel()
    if not y.any():
        return float("nan")
    return float((np.asarray(score).ravel()[y] >= threshold).mean())


def sensitivity_at_specificity(y_true: np.ndarray, score: np.ndarray, specificity: float = 0.9) -> float:
    """Sensitivity at the threshold that keeps specificity >= ``specificity`` on the same data."""
    return sensitivity_at_threshold(y_true, score, threshold_at_specificity(y_true, score, specificity))


def bootstrap_auc_ci(
    y_true: np.ndarray,
    score: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the ROC AUC, resampling rows (studies)."""
    y = np.asarray(y_true, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        auc = roc_auc(y[idx], s[idx])
        if not np.isnan(auc):
            aucs.append(auc)
    if not aucs:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(aucs, [tail, 100.0 - tail])
    return float(low), float(high)
