"""Whole-study inference the way the device does it, and the metrics of a set of studies.

Deployment runs the encoder once per slice, cuts the features into windows by the sequence
rule, runs the recurrent head on each window, averages the windows back per slice
(:func:`ich_edge.sequence.stitch`) and takes the max over slices per label for the study.
:func:`predict_series` does exactly that, with any encoder/head: Keras models, or plain
callables (TFLite wrappers in parity and QAT) that take a float32 batch of any length and
return an array.

Padding: a series shorter than a window is padded with blank slices (all-zero images).
With encode-once, the blank slice is encoded once and its feature vector fills the padded
positions, so the result equals running the whole CNN-LSTM on the padded image window.
"""

from __future__ import annotations

import numpy as np

from ich_edge import LABELS
from ich_edge.ingest.cache import CachedSeries
from ich_edge.metrics import (
    bootstrap_auc_ci,
    per_label_auc,
    rsna_log_loss,
    sensitivity_at_specificity,
    sensitivity_at_threshold,
    threshold_at_specificity,
)
from ich_edge.sequence import SequenceConfig, feature_windows, stitch
from ich_edge.study_truth import study_level
from ich_edge.transforms import pixels_to_unit

DEFAULT_SPECIFICITY = 0.9


def _run(fn, batch: np.ndarray) -> np.ndarray:
    """Call a Keras model in inference mode, or any other callable, and return numpy float32."""
    if hasattr(fn, "predict_on_batch"):
        out = fn(batch, training=False)
    else:
        out = fn(batch)
    return np.asarray(out, dtype=np.float32)


def encode_slices(encoder, images_uint8: np.ndarray, batch_slices: int = 64) -> np.ndarray:
    """Features ``float32 (N, F)`` of ``uint8 (N, S, S, 3)`` slices (input: :func:`ich_edge.transforms.pixels_to_unit`)."""
    images = np.asarray(images_uint8)
    chunks = [
        _run(encoder, pixels_to_unit(images[i : i + batch_slices]))
        for i in range(0, len(images), batch_slices)
    ]
    return np.concatenate(chunks, axis=0)


def predict_series(
    encoder,
    head,
    images_uint8: np.ndarray,
    sequence_config: SequenceConfig,
    batch_slices: int = 64,
) -> np.ndarray:
    """Per-slice probabilities ``float32 (N, K)`` of one series, bottom to top (K: the model's labels).

    Parameters
    ----------
    encoder : ``float32 (n, S, S, 3)`` in [0, 1] -> ``(n, F)`` (Keras model or callable).
    head : ``float32 (w, T, F)`` -> ``(w, T, K)`` probabilities.
    images_uint8 : the series' model inputs ``uint8 (N, S, S, 3)`` (as in the cache).
    sequence_config : window length and stride (the rule shared with the device).
    """
    num_slices = len(images_uint8)
    features = encode_slices(encoder, images_uint8, batch_slices)
    blank = np.zeros((1, *np.asarray(images_uint8).shape[1:]), np.uint8)
    windows = feature_windows(features, sequence_config, lambda: encode_slices(encoder, blank)[0])
    outputs = _run(head, windows)
    return stitch(outputs, num_slices, sequence_config)


def predict_studies(encoder, head, series_list: list[CachedSeries], sequence_config: SequenceConfig) -> list[np.ndarray]:
    """:func:`predict_series` for every series, in order."""
    return [predict_series(encoder, head, s.images, sequence_config) for s in series_list]


def _clean(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def level_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    specificity: float = DEFAULT_SPECIFICITY,
    thresholds: dict | None = None,
    n_boot: int = 0,
    seed: int = 0,
    labels=LABELS,
) -> dict:
    """Metrics of one level (slice or study) from ``int (n, K)`` truth and ``(n, K)`` scores.

    Column ``i`` is ``labels[i]`` (default the six). Returns per-label AUC (with a bootstrap
    95% CI when ``n_boot`` > 0), the RSNA weighted log loss over these labels (each with its
    RSNA weight), the threshold for ``specificity`` and the sensitivity there, and, when
    ``thresholds`` (chosen elsewhere, e.g. on validation) are given, the sensitivity and
    specificity they reach on these cases. NaN (one class only) becomes ``None``.
    """
    y = np.asarray(y_true).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64)
    out: dict = {
        "n": int(len(y)),
        "positives": {label: int(y[:, i].sum()) for i, label in enumerate(labels)},
        "auc": {k: _clean(v) for k, v in per_label_auc(y, s, labels).items()},
        "rsna_log_loss": _clean(rsna_log_loss(y, np.clip(s, 0.0, 1.0), labels=labels)) if len(y) else None,
        "specificity": specificity,
        "threshold_at_specificity": {},
        "sensitivity_at_specificity": {},
    }
    for i, label in enumerate(labels):
        out["threshold_at_specificity"][label] = float(threshold_at_specificity(y[:, i], s[:, i], specificity))
        out["sensitivity_at_specificity"][label] = _clean(sensitivity_at_specificity(y[:, i], s[:, i], specificity))
    if n_boot > 0:
        out["auc_ci95"] = {
            label: [_clean(v) for v in bootstrap_auc_ci(y[:, i], s[:, i], n_boot=n_boot, seed=seed)]
            for i, label in enumerate(labels)
        }
    if thresholds is not None:
        out["at_thresholds"] = {}
        for i, label in enumerate(labels):
            called = s[:, i] >= thresholds[label]
            negatives = ~y[:, i].astype(bool)
            spec = float((~called[negatives]).mean()) if negatives.any() else None
            out["at_thresholds"][label] = {
                "threshold": float(thresholds[label]),
                "sensitivity": _clean(sensitivity_at_threshold(y[:, i], s[:, i], thresholds[label])),
                "specificity": spec,
            }
    return out


def gather_levels(series_list: list[CachedSeries], slice_scores: list[np.ndarray], labels=LABELS) -> dict:
    """Slice- and study-level truth and scores from per-series slice scores.

    ``labels`` names the scores' columns (the model's outputs); the truth is the cache's
    columns of those names (:meth:`CachedSeries.with_labels`). Slices with any of them
    unknown are left out at slice level. The study level is
    :func:`ich_edge.study_truth.study_level` (the rule ``ich-edge bench --data`` uses too): a
    study's score is the max over the slices of all its series, labelled or not; its truth
    is known per label when any series carries it; studies with all labels known count.
    """
    series_list = [s.with_labels(labels) for s in series_list]
    width = len(labels)
    known = [(s.slice_labels >= 0).all(axis=1) for s in series_list]
    slice_true = np.concatenate([s.slice_labels[k] for s, k in zip(series_list, known)]) if series_list else np.zeros((0, width))
    slice_pred = np.concatenate([p[k] for p, k in zip(slice_scores, known)]) if series_list else np.zeros((0, width))
    return {
        "slice_true": slice_true.astype(np.int64),
        "slice_scores": slice_pred.astype(np.float64),
        **study_level(series_list, slice_scores, width),
    }


def metrics_from_scores(
    series_list: list[CachedSeries],
    slice_scores: list[np.ndarray],
    specificity: float = DEFAULT_SPECIFICITY,
    thresholds: dict | None = None,
    n_boot: int = 1000,
    labels=LABELS,
) -> tuple[dict, dict]:
    """``(metrics, levels)``: slice and study metrics of per-series scores (columns ``labels``), plus the raw arrays."""
    levels = gather_levels(series_list, slice_scores, labels)
    metrics = {
        "slice": level_metrics(
            levels["slice_true"], levels["slice_scores"], specificity, (thresholds or {}).get("slice"), labels=labels
        ),
        "study": level_metrics(
            levels["study_true"], levels["study_scores"], specificity, (thresholds or {}).get("study"), n_boot=n_boot,
            labels=labels,
        ),
    }
    return metrics, levels


def evaluate(
    encoder,
    head,
    series_list: list[CachedSeries],
    sequence_config: SequenceConfig,
    specificity: float = DEFAULT_SPECIFICITY,
    thresholds: dict | None = None,
    n_boot: int = 1000,
    labels=LABELS,
) -> dict:
    """Slice- and study-level metrics of ``encoder``/``head`` (outputs ``labels``) on ``series_list``.

    Returns ``{"slice": {...}, "study": {...}}``, each with ``n``, ``positives``, per-label
    ``auc``, ``rsna_log_loss``, ``threshold_at_specificity`` and
    ``sensitivity_at_specificity`` (chosen on these same cases), the study level also with
    ``auc_ci95`` (bootstrap over studies), and ``at_thresholds`` when ``thresholds``
    (``{"slice": {label: t}, "study": {label: t}}``, e.g. from validation) are given.
    """
    scores = predict_studies(encoder, head, series_list, sequence_config)
    metrics, _ = metrics_from_scores(series_list, scores, specificity, thresholds, n_boot, labels)
    return metrics


__all__ = [
    "encode_slices",
    "predict_series",
    "predict_studies",
    "evaluate",
    "level_metrics",
    "gather_levels",
    "metrics_from_scores",
]
