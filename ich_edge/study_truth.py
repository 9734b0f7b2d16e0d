"""Study truth and study scores: the one rule shared by bench, evaluate, parity and training.

A study (one Study Instance UID) may hold several series in a cache, and some of them may
carry no labels (a study-level CSV names studies, an RSNA CSV names slices of some series
only). Every study-level number of ich-edge (``ich-edge bench --data``, ``ich-edge parity``,
the reports of ``train`` and ``qat``, the patient split) folds series into studies here:

* **truth of a series**, per label column: its study label where known (``>= 0``); else,
  when the series has slices and every slice knows that column, the OR (max) over its
  slices; else unknown (:data:`UNKNOWN`).
* **truth of a study**, per label: known when any of its series knows it; then positive
  when any series that knows it is positive (the max over series: unknown, -1, loses to
  0 and 1).
* **score of a study**, per label: the max over *all* its series, labelled or not, of the
  series' study score (the max over its slices, :func:`ich_edge.sequence.study_probabilities`):
  the app sees every series of the study, so an unlabelled series still counts.
* a study enters a study-level metric when all its labels are known (:func:`labelled_studies`).

A "series" here is anything with ``study_uid``, ``study_labels`` ``(K,)`` and
``slice_labels`` ``(N, K)`` (an :class:`ich_edge.ingest.cache.CachedSeries`), -1 where unknown.
This module needs numpy only, so the runtime tier (bench) and the training tier share it.
"""

from __future__ import annotations

import numpy as np

from ich_edge.errors import ConfigError
from ich_edge.sequence import study_probabilities

#: The value of an unknown label, in caches and in truth tables.
UNKNOWN = -1


def series_truth(study_labels, slice_labels) -> np.ndarray:
    """Truth ``int8 (K,)`` of one series: study label where known, else the OR over slices that all know it, else -1.

    ``study_labels`` may be None (no study-level labels: the slices decide).
    """
    slices = np.asarray(slice_labels, np.int8)
    width = slices.shape[1] if slices.ndim == 2 else len(study_labels)
    truth = np.full(width, UNKNOWN, np.int8)
    if len(slices):
        by_slices = (slices >= 0).all(axis=0)
        truth[by_slices] = slices[:, by_slices].max(axis=0)
    if study_labels is not None:
        study = np.asarray(study_labels, np.int8)
        truth = np.where(study >= 0, study, truth).astype(np.int8)
    return truth


def study_truth(series_list) -> dict[str, np.ndarray]:
    """``{study_uid: int8 (K,)}``: per label, the max over the study's series' :func:`series_truth` (-1: unknown)."""
    table: dict[str, np.ndarray] = {}
    for series in series_list:
        truth = series_truth(series.study_labels, series.slice_labels)
        previous = table.get(series.study_uid)
        table[series.study_uid] = truth if previous is None else np.maximum(previous, truth)
    return table


def study_scores(series_list, slice_scores) -> dict[str, np.ndarray]:
    """``{study_uid: float64 (K,)}``: the max over every series of the study (labelled or not) of its slices' scores.

    ``slice_scores``: one ``(N, K)`` array of slice probabilities per series, in ``series_list`` order.
    """
    series_list, slice_scores = list(series_list), list(slice_scores)
    if len(series_list) != len(slice_scores):
        raise ConfigError(f"{len(slice_scores)} score arrays for {len(series_list)} series; pass one per series, in order")
    table: dict[str, np.ndarray] = {}
    for series, scores in zip(series_list, slice_scores):
        study = np.asarray(study_probabilities(scores), np.float64)
        previous = table.get(series.study_uid)
        table[series.study_uid] = study if previous is None else np.maximum(previous, study)
    return table


def labelled_studies(truth: dict[str, np.ndarray]) -> list[str]:
    """The study uids of ``truth`` (from :func:`study_truth`) whose every label is known, sorted."""
    return sorted(uid for uid, labels in truth.items() if (np.asarray(labels) >= 0).all())


def study_level(series_list, slice_scores, width: int | None = None) -> dict:
    """Study-level truth and scores of per-series slice scores, for metrics.

    Returns ``{"study_uids": [...], "study_true": int64 (n, K), "study_scores": float64 (n, K)}``
    over :func:`labelled_studies` (sorted). ``width`` (K) shapes an empty result; by default
    it is the first series' label count.
    """
    series_list = list(series_list)
    if width is None:
        width = len(series_list[0].study_labels) if series_list else 0
    truth = study_truth(series_list)
    scores = study_scores(series_list, slice_scores)
    uids = labelled_studies(truth)
    return {
        "study_uids": uids,
        "study_true": np.array([truth[u] for u in uids], np.int64).reshape(-1, width),
        "study_scores": np.array([scores[u] for u in uids], np.float64).reshape(-1, width),
    }
