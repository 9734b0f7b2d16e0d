"""The trivial baseline: how much of the brain is as dense as acute blood.

Slice score: the fraction of *brain pixels* whose density is between 50 and 90 HU, where a
brain pixel is a soft-tissue pixel (0 to 100 HU) inside the skull (dense pixels, >= 150 HU,
on both sides along its row and along its column) none of whose eight neighbours is bone or
calcification (>= 150 HU) or fat/air (<= -20 HU), so that the scalp, the face and the
partial-volume rim along the skull do not count. Slices with less brain than
``MIN_BRAIN_FRACTION`` of the image (vertex, skull base) score 0. Study score: the maximum
over its slices (:func:`ich_edge.sequence.study_probabilities`).

A model has to beat this by a wide margin to show it learned the shape and place of bleeds
rather than their density. It runs on what the trainer sees, the prepared cache (uint8
``(N, S, S, 3)`` from :class:`ich_edge.transforms.Preprocess`): HU are recovered from the
channel whose window covers 0 to 100 HU with the finest step (the subdural window 80/200,
whose range [-20, 180] HU holds blood unclipped).
"""

from __future__ import annotations

import numpy as np

from ich_edge.errors import ConfigError
from ich_edge.transforms import PreprocessConfig

BLOOD_HU = (50.0, 90.0)
BRAIN_HU = (0.0, 100.0)
DENSE_HU = 150.0  # bone and calcification
LOW_HU = -20.0  # fat and air
MIN_BRAIN_FRACTION = 0.02


def hu_channel(config: PreprocessConfig) -> int:
    """Index of the channel used to recover HU: covers BRAIN_HU and DENSE_HU/LOW_HU, narrowest.

    Raises :class:`ConfigError` when no window covers ``[LOW_HU, DENSE_HU]``.
    """
    candidates = [
        (width, i)
        for i, (center, width) in enumerate(config.windows_hu)
        if center - width / 2.0 <= LOW_HU and center + width / 2.0 >= DENSE_HU
    ]
    if not candidates:
        raise ConfigError(
            f"the baseline needs a window covering {LOW_HU:g}..{DENSE_HU:g} HU (e.g. subdural 80/200); "
            f"the preprocessing windows are {list(config.windows_hu)}"
        )
    return min(candidates)[1]


def cache_to_hu(images_uint8: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """uint8 ``(N, S, S, 3)`` model inputs back to HU ``(N, S, S)`` (float32) via :func:`hu_channel`.

    Values clipped by the window come back as the window's ends.
    """
    images = np.asarray(images_uint8)
    if images.ndim != 4 or images.shape[-1] != len(config.windows_hu):
        raise ConfigError(f"expected uint8 images (N, S, S, {len(config.windows_hu)}), got shape {images.shape}")
    channel = hu_channel(config)
    center, width = config.windows_hu[channel]
    low = center - width / 2.0
    return images[..., channel].astype(np.float32) * np.float32(width / 255.0) + np.float32(low)


def _touches(mask: np.ndarray) -> np.ndarray:
    """True where a pixel or one of its eight neighbours is in ``mask`` (N, H, W)."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    h, w = mask.shape[1:]
    out = np.zeros_like(mask)
    for dr in range(3):
        for dc in range(3):
            out |= padded[:, dr : dr + h, dc : dc + w]
    return out


def _inside(dense: np.ndarray) -> np.ndarray:
    """True where dense pixels lie on both sides along the row and along the column."""
    inside = np.ones_like(dense)
    for axis in (1, 2):
        before = np.maximum.accumulate(dense, axis=axis)
        after = np.flip(np.maximum.accumulate(np.flip(dense, axis=axis), axis=axis), axis=axis)
        inside &= before & after
    return inside


def slice_scores_from_hu(hu: np.ndarray) -> np.ndarray:
    """Baseline score of each slice of ``hu`` ``(N, H, W)`` at the resolution given."""
    hu = np.asarray(hu, np.float32)
    if hu.ndim == 2:
        hu = hu[None]
    dense = hu >= DENSE_HU
    excluded = _touches(dense | (hu <= LOW_HU))
    brain = (hu >= BRAIN_HU[0]) & (hu <= BRAIN_HU[1]) & ~excluded & _inside(dense)
    blood = brain & (hu >= BLOOD_HU[0]) & (hu <= BLOOD_HU[1])
    brain_px = brain.sum(axis=(1, 2))
    scores = blood.sum(axis=(1, 2)) / np.maximum(brain_px, 1)
    return np.where(brain_px >= MIN_BRAIN_FRACTION * hu.shape[1] * hu.shape[2], scores, 0.0)


def baseline_slice_scores(images_uint8: np.ndarray, preprocess_config: PreprocessConfig) -> np.ndarray:
    """Baseline score per slice of prepared model inputs uint8 ``(N, S, S, 3)``: float ``(N,)``."""
    return slice_scores_from_hu(cache_to_hu(images_uint8, preprocess_config))


