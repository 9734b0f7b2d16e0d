"""The study rule of ich_edge.study_truth: truth per series and per study, scores over all series."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge.errors import ConfigError
from ich_edge.ingest.cache import CachedSeries
from ich_edge.labels import study_labels
from ich_edge.study_truth import UNKNOWN, labelled_studies, series_truth, study_level, study_scores, study_truth

K = 6


def _series(study: str, name: str, slices, study_row=None) -> CachedSeries:
    slices = np.asarray(slices, np.int8).reshape(-1, K)
    row = np.full(K, UNKNOWN, np.int8) if study_row is None else np.asarray(study_row, np.int8)
    return CachedSeries(name, study, np.zeros((len(slices), 4, 4, 3), np.uint8), slices, row,
                        tuple(f"{name}.{i}" for i in range(len(slices))))


def test_series_truth_prefers_study_labels_then_slices_column_by_column():
    slices = np.array([[0, 1, 0, 0, -1, 1], [0, 0, 0, 0, 0, 1]], np.int8)
    np.testing.assert_array_equal(series_truth(None, slices), [0, 1, 0, 0, -1, 1])  # column 4: a slice does not know
    study = np.array([1, -1, -1, -1, 0, -1], np.int8)
    np.testing.assert_array_equal(series_truth(study, slices), [1, 1, 0, 0, 0, 1])  # study labels win where known
    np.testing.assert_array_equal(series_truth(None, np.zeros((0, K), np.int8)), [-1] * K)  # no slices: unknown
    np.testing.assert_array_equal(study_labels(slices[1:]), [0, 0, 0, 0, 0, 1])  # prepare's rule is the series rule


def test_a_label_is_known_when_any_series_carries_it_and_positive_when_any_says_so():
    unlabelled = np.full((3, K), UNKNOWN)
    negative = np.zeros((2, K))
    positive = np.zeros((2, K))
    positive[1, [2, 5]] = 1
    series = [
        _series("a", "a.1", unlabelled),
        _series("a", "a.2", negative),  # a: one unlabelled series, one negative one: negative
        _series("b", "b.1", negative),
        _series("b", "b.2", unlabelled, study_row=[0, 0, 1, 0, 0, 1]),  # b: OR over series
        _series("c", "c.1", unlabelled),  # c: nothing known
        _series("d", "d.1", positive),
    ]
    truth = study_truth(series)
    np.testing.assert_array_equal(truth["a"], np.zeros(K))
    np.testing.assert_array_equal(truth["b"], [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(truth["c"], [-1] * K)
    np.testing.assert_array_equal(truth["d"], [0, 0, 1, 0, 0, 1])
    assert labelled_studies(truth) == ["a", "b", "d"]


def test_a_study_score_is_the_max_over_all_its_series_labelled_or_not():
    series = [_series("a", "a.1", np.full((2, K), UNKNOWN)), _series("a", "a.2", np.zeros((2, K))),
              _series("c", "c.1", np.full((1, K), UNKNOWN))]
    scores = [np.full((2, K), 0.9), np.array([[0.1] * K, [0.2] * K]), np.full((1, K), 0.5)]
    folded = study_scores(series, scores)
    np.testing.assert_allclose(folded["a"], [0.9] * K)  # the unlabelled series' score counts
    level = study_level(series, scores)
    assert level["study_uids"] == ["a"]  # c has no truth: left out of the metrics
    np.testing.assert_array_equal(level["study_true"], np.zeros((1, K)))
    np.testing.assert_allclose(level["study_scores"], [[0.9] * K])
    with pytest.raises(ConfigError, match="one per series"):
        study_scores(series, scores[:2])
    assert study_level([], [], width=2)["study_true"].shape == (0, 2)
