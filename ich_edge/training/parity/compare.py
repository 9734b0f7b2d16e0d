"""One level's comparison (slice or study): each variant's scores against the reference's.

Per label: ROC AUC of each model, its change and the bootstrap 95% intervals of both (paired,
resampling studies: :mod:`ich_edge.training.parity.stats`), RSNA and per-label log loss,
max/mean absolute probability difference, and the decisions at each model's thresholds
(agreement, lost and added positives and detections, sensitivity and specificity).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ich_edge import LABELS
from ich_edge.metrics import roc_auc, rsna_log_loss
from ich_edge.training.parity.stats import bootstrap_level


def _none(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _rate(calls: np.ndarray, among: np.ndarray) -> float | None:
    """Share of ``calls`` among the rows in ``among`` (sensitivity, specificity); None without rows."""
    return float(calls[among].mean()) if among.any() else None


def _label_log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(p, np.float64), eps, 1.0 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()) if len(y) else float("nan")


@dataclass(frozen=True)
class Level:
    """Truth, per-model scores and study groups of one level (``slice`` or ``study``); columns ``labels``."""

    name: str
    y_true: np.ndarray
    groups: np.ndarray
    n_groups: int
    reference: np.ndarray
    variants: list = field(default_factory=list)
    labels: tuple[str, ...] = LABELS


def compare_level(level: Level, ref_thresholds: dict, var_thresholds: list[dict], replicates: int, seed: int) -> dict:
    """Per-label comparison of each variant with the reference at one level (see module doc)."""
    y, labels = level.y_true.astype(np.int64), level.labels
    boot = bootstrap_level(y, level.reference, level.variants, level.groups, level.n_groups, replicates, seed, labels)
    ref_auc = {label: roc_auc(y[:, i], level.reference[:, i]) for i, label in enumerate(labels)}
    reference = {
        "n": int(len(y)),
        "positives": {label: int(y[:, i].sum()) for i, label in enumerate(labels)},
        "rsna_log_loss": _none(rsna_log_loss(y, level.reference, labels=labels)) if len(y) else None,
        "labels": {
            label: {
                "auc": _none(ref_auc[label]),
                "auc_ci95": boot["reference"][label],
                "log_loss": _none(_label_log_loss(y[:, i], level.reference[:, i])),
                "threshold": float(ref_thresholds[label]),
                "sensitivity": _rate(level.reference[:, i] >= ref_thresholds[label], y[:, i] == 1),
                "specificity": _rate(level.reference[:, i] < ref_thresholds[label], y[:, i] == 0),
            }
            for i, label in enumerate(labels)
        },
    }
    variants = []
    for k, (scores, thresholds) in enumerate(zip(level.variants, var_thresholds)):
        entries = {}
        for i, label in enumerate(labels):
            diff = np.abs(scores[:, i].astype(np.float64) - level.reference[:, i])
            ref_call = level.reference[:, i] >= ref_thresholds[label]
            var_call = scores[:, i] >= thresholds[label]
            auc = roc_auc(y[:, i], scores[:, i])
            truth = y[:, i] == 1
            entries[label] = {
                "auc": _none(auc),
                "auc_ci95": boot["variants"][k][label]["auc"],
                "auc_delta": _none(auc - ref_auc[label]),
                "auc_delta_ci95": boot["variants"][k][label]["delta"],
                "log_loss": _none(_label_log_loss(y[:, i], scores[:, i])),
                "max_abs_diff": float(diff.max()) if diff.size else None,
                "mean_abs_diff": float(diff.mean()) if diff.size else None,
                "threshold": float(thresholds[label]),
                "agreement": float((ref_call == var_call).mean()) if diff.size else None,
                "lost_positives": int((ref_call & ~var_call).sum()),
                "new_positives": int((~ref_call & var_call).sum()),
                "lost_detections": int((truth & ref_call & ~var_call).sum()),
                "gained_detections": int((truth & ~ref_call & var_call).sum()),
                "sensitivity": _rate(var_call, truth),
                "specificity": _rate(~var_call, ~truth),
                "reference_sensitivity": _rate(ref_call, truth),
                "reference_specificity": _rate(~ref_call, ~truth),
            }
        variants.append({"rsna_log_loss": _none(rsna_log_loss(y, scores, labels=labels)) if len(y) else None, "labels": entries})
    return {"reference": reference, "variants": variants}
