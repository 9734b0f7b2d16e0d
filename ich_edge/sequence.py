"""Fixed-length windows of consecutive slices, and stitching their predictions back.

The recurrent head reads ``window_slices`` consecutive slices at a time. A study of any
length is covered like this (the rule the trainer, ``predict`` and the app all follow):

* window starts are ``0, stride, 2*stride, ...`` while a window fits, plus one last window
  ending at the last slice, so every slice is covered and no window runs past the end;
* a study shorter than one window becomes a single window padded at the end with blank
  slices (all-zero input, i.e. below every window's low end); outputs on padding are dropped;
* a slice's probability is the mean over the windows that cover it;
* the study-level probability of each label is the max over its slices.

Training instead draws, each epoch, a grid of non-overlapping windows at a random offset
(:func:`epoch_window_starts`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ich_edge.errors import ConfigError

STITCH_RULE = "mean over the windows covering the slice"
STUDY_RULE = "max over slices, per label"


@dataclass(frozen=True)
class SequenceConfig:
    """Window length and stride, in slices."""

    window_slices: int = 24
    stride_slices: int = 12

    def __post_init__(self) -> None:
        if self.window_slices < 2:
            raise ConfigError(f"window_slices must be >= 2, got {self.window_slices}")
        if not 1 <= self.stride_slices <= self.window_slices:
            raise ConfigError(
                f"stride_slices must be in 1..window_slices ({self.window_slices}), got {self.stride_slices}"
            )

    @classmethod
    def half_overlap(cls, window_slices: int) -> "SequenceConfig":
        """Windows of ``window_slices`` with a stride of half a window (at least 1): the default rule."""
        return cls(window_slices, max(1, window_slices // 2))

    def to_dict(self) -> dict:
        return {**asdict(self), "stitch_rule": STITCH_RULE, "study_rule": STUDY_RULE}

    @classmethod
    def from_dict(cls, data: dict) -> "SequenceConfig":
        try:
            return cls(int(data["window_slices"]), int(data["stride_slices"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"sequence description is incomplete: {err}") from err


def window_starts(num_slices: int, config: SequenceConfig) -> list[int]:
    """First slice index of each window for a study of ``num_slices`` slices."""
    if num_slices < 1:
        raise ConfigError("a study needs at least one slice")
    length, stride = config.window_slices, config.stride_slices
    if num_slices <= length:
        return [0]
    starts = list(range(0, num_slices - length + 1, stride))
    if starts[-1] != num_slices - length:
        starts.append(num_slices - length)
    return starts


def epoch_window_starts(num_slices: int, window_slices: int, rng: np.random.Generator) -> list[int]:
    """Training windows of one series for one epoch: starts of a grid of non-overlapping
    windows at a random offset, clipped to the series."""
    if num_slices <= window_slices:
        return [0]
    last = num_slices - window_slices
    offset = int(rng.integers(window_slices))
    starts = range(offset - window_slices, num_slices, window_slices)
    return sorted({min(max(s, 0), last) for s in starts})


def window_indices(num_slices: int, config: SequenceConfig) -> np.ndarray:
    """``int (num_windows, window_slices)`` slice indices per window; -1 marks padding."""
    rows = []
    for start in window_starts(num_slices, config):
        idx = np.arange(start, start + config.window_slices)
        idx[idx >= num_slices] = -1
        rows.append(idx)
    return np.stack(rows)


def gather_windows(per_slice: np.ndarray, config: SequenceConfig) -> np.ndarray:
    """Cut ``(N, ...)`` per-slice arrays into ``(num_windows, window_slices, ...)``.

    Padding positions are filled with zeros (blank slices, or zero features).
    """
    idx = window_indices(len(per_slice), config)
    out = np.zeros((idx.shape[0], idx.shape[1], *per_slice.shape[1:]), dtype=per_slice.dtype)
    valid = idx >= 0
    out[valid] = per_slice[idx[valid]]
    return out


def feature_windows(features: np.ndarray, config: SequenceConfig, blank_features: Callable[[], np.ndarray]) -> np.ndarray:
    """Per-slice features ``(N, F)`` cut into ``(num_windows, window_slices, F)`` windows, with
    padding slots filled by ``blank_features()``, the encoder's output for a blank (all-zero)
    slice, called only when there is padding (a study shorter than one window).

    The one padding rule for encode-once heads: the result equals running the whole model on
    the image window padded with blank (all-zero) slices. Evaluation, the TFLite runtime and
    the app reference all call this.
    """
    windows = gather_windows(np.asarray(features), config)
    padding = window_indices(len(features), config) < 0
    if padding.any():
        windows[padding] = np.asarray(blank_features(), dtype=windows.dtype).reshape(-1)
    return windows


def stitch(window_outputs: np.ndarray, num_slices: int, config: SequenceConfig) -> np.ndarray:
    """Average ``(num_windows, window_slices, L)`` window outputs back to ``(num_slices, L)``."""
    idx = window_indices(num_slices, config)
    if window_outputs.shape[:2] != idx.shape:
        raise ConfigError(
            f"expected window outputs of shape {idx.shape} + (labels,), got {window_outputs.shape}"
        )
    total = np.zeros((num_slices, window_outputs.shape[-1]), dtype=np.float64)
    count = np.zeros((num_slices, 1), dtype=np.float64)
    valid = idx >= 0
    np.add.at(total, idx[valid], window_outputs[valid])
    np.add.at(count, idx[valid], 1.0)
    return (total / count).astype(np.float32)


def study_probabilities(slice_probabilities: np.ndarray) -> np.ndarray:
    """Study-level probability per label from ``(num_slices, L)``: the max over slices."""
    return np.asarray(slice_probabilities).max(axis=0)
