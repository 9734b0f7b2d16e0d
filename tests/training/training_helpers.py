"""Tiny cached series for the training tests (a uniquely named module: conftest files are not importable)."""

from __future__ import annotations

import numpy as np

from ich_edge.ingest.cache import Cache, CachedSeries
from ich_edge.transforms import PreprocessConfig

SIZE_PX = 32


def make_series(rng: np.random.Generator, study: int, series: int, num_slices: int, size_px: int = SIZE_PX) -> CachedSeries:
    """A series whose bleeding slices carry a bright patch at a place that depends on the subtype."""
    images = rng.integers(0, 60, (num_slices, size_px, size_px, 3), dtype=np.uint8)
    labels = np.zeros((num_slices, 6), np.int8)
    if study % 2:  # every other study bleeds, one subtype, on a run of slices
        subtype = study % 5
        first = int(rng.integers(0, num_slices))
        for k in range(first, min(num_slices, first + 2)):
            labels[k, subtype] = 1
            labels[k, 5] = 1
            row = 4 + 5 * subtype
            images[k, row : row + 4, 8:24, 0] = 250
    return CachedSeries(
        series_uid=f"1.2.3.{study}.{series}",
        study_uid=f"1.2.3.{study}",
        images=images,
        slice_labels=labels,
        study_labels=labels.max(axis=0),
        slice_ids=tuple(f"ID_{study:04x}{series:02x}{k:03x}" for k in range(num_slices)),
    )


def write_cache(root, num_studies: int = 10, num_slices: int = 4, seed: int = 0, series_per_study: int = 1, size_px: int = SIZE_PX) -> Cache:
    rng = np.random.default_rng(seed)
    cache = Cache.create(root, PreprocessConfig(input_size_px=size_px))
    for study in range(num_studies):
        for series in range(series_per_study):
            cache.write(make_series(rng, study + 1000 * seed, series, num_slices, size_px))
    return cache
