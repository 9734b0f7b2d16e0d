"""Paired bootstrap over studies for ROC AUCs, vectorized (numpy only).

Resampling studies with replacement is the same as weighting each row by how often its
study was drawn; :func:`weighted_auc` scores all replicates of a chunk with one sort, so
a thousand replicates of thousands of slices take seconds, and every model is scored on
the same replicates (paired differences).
"""

from __future__ import annotations

import numpy as np

from ich_edge import LABELS

CI_LEVEL = 0.95
#: Replicates per chunk of the vectorized bootstrap (bounds memory: chunk x rows floats).
_CHUNK = 100


def weighted_auc(y_true: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``weights`` ``(R, n)`` (ties count half); NaN without both classes.

    With integer weights (how often each row was drawn) this equals :func:`roc_auc` on the
    resampled rows, computed with one sort instead of one per replicate.
    """
    y = np.asarray(y_true, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if y.size == 0:
        return np.full(w.shape[0], np.nan)
    order = np.argsort(s, kind="mergesort")
    s, y, w = s[order], y[order], w[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    pos = np.add.reduceat(w * y, starts, axis=1)
    neg = np.add.reduceat(w * ~y, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives scoring strictly lower than each group
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
    auc[(total_pos == 0) | (total_neg == 0)] = np.nan
    return auc


def study_weights(groups: np.ndarray, n_groups: int, replicates: int, seed: int):
    """Yield ``(R, rows)`` weight chunks: how often each row's study was drawn, per replicate."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    done = 0
    while done < replicates:
        size = min(_CHUNK, replicates - done)
        draws = rng.integers(0, n_groups, (size, n_groups))
        counts = np.zeros((size, n_groups))
        np.add.at(counts, (np.repeat(np.arange(size), n_groups), draws.ravel()), 1.0)
        yield counts[:, groups]
        done += size


def _interval(values: np.ndarray) -> list[float | None]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [None, None]
    tail = (1.0 - CI_LEVEL) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return [float(low), float(high)]


def bootstrap_level(y_true, reference, variants: list, groups, n_groups: int, replicates: int, seed: int,
                    labels=LABELS) -> dict:
    """Paired study bootstrap of AUCs at one level (column ``i`` is ``labels[i]``).

    Returns ``{"reference": {label: ci}, "variants": [{label: {"auc": ci, "delta": ci}}]}``.
    Every model is scored on the same replicates, so each delta interval is paired.
    """
    y = np.asarray(y_true)
    ref_runs = {label: [] for label in labels}
    var_runs = [{label: [] for label in labels} for _ in variants]
    for weights in study_weights(groups, n_groups, replicates, seed):
        for i, label in enumerate(labels):
            ref_auc = weighted_auc(y[:, i], reference[:, i], weights)
            ref_runs[label].append(ref_auc)
            for runs, scores in zip(var_runs, variants):
                runs[label].append(weighted_auc(y[:, i], scores[:, i], weights) - ref_auc)
    out = {"reference": {}, "variants": [{} for _ in variants]}
    for label in labels:
        ref = np.concatenate(ref_runs[label]) if replicates else np.zeros(0)
        out["reference"][label] = _interval(ref)
        for k in range(len(variants)):
            delta = np.concatenate(var_runs[k][label]) if replicates else np.zeros(0)
            out["variants"][k][label] = {"auc": _interval(ref + delta), "delta": _interval(delta)}
    return out
