"""Tiny caches and models for the training tests (4-slice 32x32 studies, a tiny CNN-LSTM)."""

from __future__ import annotations

import pytest

from training_helpers import write_cache


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """10 studies of 4 slices, 32x32 px."""
    return write_cache(tmp_path_factory.mktemp("tiny_cache"), num_studies=10, num_slices=4)


@pytest.fixture(scope="session")
def tiny_test_cache(tmp_path_factory):
    """6 other studies (another seed) for --test."""
    return write_cache(tmp_path_factory.mktemp("tiny_test_cache"), num_studies=6, num_slices=4, seed=1)
