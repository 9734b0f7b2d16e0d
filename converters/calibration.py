"""Calibration data for the integer recipes: windows drawn from the cache, both signatures.

``--calibration-windows N`` windows are drawn (seeded) from the training studies of the
run by the deployment rule (:func:`ich_edge.sequence.window_indices`), round-robin over the
series so that a small N still spans many studies. ``encode`` is calibrated on every
distinct slice of those windows (N x window_slices slices at most, about 1,500 by
default), ``classify`` on the windows of features the Keras encoder gives for them, with
blank-slice features on padding exactly as at inference (:func:`ich_edge.sequence.feature_windows`,
the one padding rule) and the one input scaling (:func:`ich_edge.transforms.pixels_to_unit`).

The default of 64 windows comes from the demo model: with 16, the integer LSTM's ranges
came from too few windows and qat-int8 lost 2 of 100 epidural study decisions against its
QAT model (98 % agreement, a parity FAIL); 64, 128 and 256 windows gave the same file
behaviour (99 % agreement, worst study AUC change -0.0024, PASS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ich_edge.errors import ConfigError
from ich_edge.sequence import SequenceConfig, feature_windows, window_indices
from ich_edge.transforms import pixels_to_unit

DEFAULT_CALIBRATION_WINDOWS = 64


@dataclass(frozen=True)
class CalibrationSet:
    """``images`` uint8 (n, S, S, 3) for ``encode``; ``windows`` float32 (W, T, F) for ``classify``."""

    images: np.ndarray
    windows: np.ndarray

    @property
    def num_slices(self) -> int:
        return int(len(self.images))

    @property
    def num_windows(self) -> int:
        return int(len(self.windows))


def draw_windows(series_list, sequence: SequenceConfig, num_windows: int, seed: int = 0) -> list[tuple[int, np.ndarray]]:
    """``(series index, slice indices with -1 for padding)`` of ``num_windows`` windows.

    Each series' windows are shuffled, then series are visited in a shuffled order taking one
    window from each in turn until ``num_windows`` are drawn (or all are).
    """
    if num_windows < 1:
        raise ConfigError(f"calibration windows must be >= 1, got {num_windows}")
    if not series_list:
        raise ConfigError("the cache holds no series to calibrate on; pass --data CACHE prepared for this model")
    rng = np.random.default_rng(seed)
    per_series = []
    for index in rng.permutation(len(series_list)):
        rows = window_indices(series_list[index].num_slices, sequence)
        per_series.append([(int(index), rows[i]) for i in rng.permutation(len(rows))])
    drawn: list[tuple[int, np.ndarray]] = []
    depth = 0
    while len(drawn) < num_windows and any(depth < len(p) for p in per_series):
        drawn.extend(p[depth] for p in per_series if depth < len(p))
        depth += 1
    return drawn[:num_windows]


def calibration_set(encoder, series_list, sequence: SequenceConfig, num_windows: int, seed: int = 0) -> CalibrationSet:
    """Slices and feature windows of ``num_windows`` drawn windows, features from ``encoder``.

    ``encoder`` maps float32 ``(n, S, S, 3)`` in [0, 1] to ``(n, F)`` (the Keras encoder, or
    the QAT encoder for qat-int8).
    """
    from ich_edge.training.evaluate import encode_slices

    drawn = draw_windows(series_list, sequence, num_windows, seed)
    keys = sorted({(s, int(i)) for s, rows in drawn for i in rows if i >= 0})
    position = {key: n for n, key in enumerate(keys)}
    images = np.stack([series_list[s].images[i] for s, i in keys])
    padded = any((rows < 0).any() for _, rows in drawn)
    if padded:  # the blank slice is an input the encoder really sees (padding)
        images = np.concatenate([images, np.zeros((1, *images.shape[1:]), np.uint8)])
    features = encode_slices(encoder, images)
    series_windows = {}
    for s in sorted({s for s, _ in drawn}):
        # the series' slice features, filled for the drawn slices (the only ones a drawn window reads)
        table = np.zeros((series_list[s].num_slices, features.shape[1]), np.float32)
        rows = [i for t, i in keys if t == s]
        table[rows] = features[[position[(s, i)] for i in rows]]
        series_windows[s] = (
            window_indices(series_list[s].num_slices, sequence),
            feature_windows(table, sequence, lambda: features[-1]),  # the one padding rule
        )
    windows = np.stack([_drawn_window(*series_windows[s], rows) for s, rows in drawn]).astype(np.float32)
    return CalibrationSet(images=images, windows=windows)


def _drawn_window(indices: np.ndarray, windows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The window of ``windows`` whose slice indices are ``rows`` (a row of ``indices``)."""
    return windows[int(np.flatnonzero((indices == rows).all(axis=1))[0])]


def representative_dataset(calibration: CalibrationSet, image_input: str = "image", features_input: str = "features"):
    """A converter ``representative_dataset``: ``(signature, {input: array})`` samples.

    All ``classify`` samples come before the ``encode`` ones: with TensorFlow 2.21 the
    calibrator fails (``tensor.data.raw != nullptr``) when it prepares the LSTM signature
    after the convolutional one, and succeeds in this order.
    """

    def generate():
        for window in calibration.windows:
            yield "classify", {features_input: window[None].astype(np.float32)}
        for image in calibration.images:
            yield "encode", {image_input: pixels_to_unit(image[None])}

    return generate
