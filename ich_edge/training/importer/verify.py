"""Verify before writing: the windows an imported or converted model is checked on, and where it disagrees.

Random windows never contain what real studies do, so every check (import's split, convert's
fp32 file) runs on :func:`verification_windows`: standard ``(B, T, S, S, 3)`` windows in
[0, 1] (``uint8 / 255`` of the cache) with

* blank padding slices at the end (a study shorter than the window, padded as
  :mod:`ich_edge.sequence` pads it: all-zero slices) and at the start;
* a one-slice study padded to the window; an all-air (all-zero) window;
* the extremes of the input: every pixel 0 (the declared ``--input-scale``'s low end once
  mapped by :class:`ich_edge.transforms.ModelInput`), every pixel 1 (its high end), and
  slices alternating between the two;
* a head-like phantom (a disc on air) between blank slices;
* real cache windows, when a cache is given (a short series padded as the app pads it).

A difference above :data:`TOLERANCE` is an error (never a warning) that names the first
layer where the two models disagree (:func:`first_disagreement`).
"""

from __future__ import annotations

import numpy as np

from ich_edge.sequence import SequenceConfig, gather_windows

#: Largest |difference| in output probability accepted between a model and its copy.
TOLERANCE = 1e-5
#: Windows per model call while checking (memory of a large model's activations).
WINDOWS_PER_CALL = 4
CASES = ("random", "padded at the end", "padded at the start", "one slice padded", "all air (all zero)",
         "all one (input maximum)", "alternating 0/1 slices", "phantom between blank slices")


def _phantom(size_px: int, rng) -> np.ndarray:
    yy, xx = np.mgrid[:size_px, :size_px]
    r = np.hypot(yy - size_px / 2, xx - size_px / 2) / (size_px / 2)
    disc = np.where(r < 0.8, 0.45, 0.0) + np.where((r >= 0.8) & (r < 0.9), 1.0, 0.0)
    image = np.stack([disc, disc * 0.8, np.clip(disc * 1.5, 0, 1)], axis=-1)
    return np.clip(image + rng.normal(0, 0.02, image.shape) * (r < 0.9)[..., None], 0, 1)


def verification_windows(size_px: int, window_slices: int, cache_series=(), max_cache_windows: int = 4) -> tuple[np.ndarray, list[str]]:
    """``(windows (B, T, S, S, 3) float32 in [0, 1], one description per window)``; see the module doc."""
    t, rng = window_slices, np.random.default_rng(0)
    noise = rng.uniform(0, 1, (t, size_px, size_px, 3))
    zeros, ones = np.zeros_like(noise), np.ones_like(noise)
    half = max(1, t // 2)
    padded_end, padded_start, one = zeros.copy(), zeros.copy(), zeros.copy()
    padded_end[:half], padded_start[half:], one[0] = noise[:half], noise[half:], noise[0]
    alternating = np.where((np.arange(t) % 2 == 0)[:, None, None, None], ones, zeros)
    phantom = np.repeat(_phantom(size_px, rng)[None], t, axis=0)
    phantom[0] = phantom[-1] = 0.0
    windows = [noise, padded_end, padded_start, one, zeros, ones, alternating, phantom]
    names = list(CASES)
    for series in cache_series:
        if len(names) - len(CASES) >= max_cache_windows:
            break
        images = np.asarray(series.images[: max(1, min(len(series.images), t - 1))], np.float32) / 255.0
        for k, window in enumerate(gather_windows(images, SequenceConfig.half_overlap(t))[:1]):
            windows.append(window)
            names.append(f"cache series {getattr(series, 'series_uid', '?')} ({len(images)} slices, padded)")
    return np.stack(windows).astype(np.float32), names


def in_batches(fn, windows: np.ndarray) -> np.ndarray:
    """``fn`` on ``windows`` in batches of :data:`WINDOWS_PER_CALL`, concatenated."""
    return np.concatenate([np.asarray(fn(windows[i : i + WINDOWS_PER_CALL]), np.float32)
                           for i in range(0, len(windows), WINDOWS_PER_CALL)], axis=0)


def worst(diff: np.ndarray, names: list[str]) -> str:
    """The description of the window with the largest difference (``diff`` is per window, first axis)."""
    per_window = np.abs(diff).reshape(len(diff), -1).max(axis=1)
    return names[int(np.argmax(per_window))]


def first_disagreement(pairs, tolerance: float = TOLERANCE) -> str:
    """``"layer 'x' (max |diff| 3.1e-02)"`` for the first ``(name, a, b)`` whose arrays differ past ``tolerance``
    (relative to the largest |b| where that exceeds 1)."""
    for name, a, b in pairs:
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        if a.shape != b.shape:
            return f"{name} (shapes {a.shape} and {b.shape})"
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        scale = max(1.0, float(np.abs(b).max())) if b.size else 1.0  # features may be large: relative there
        if not diff <= tolerance * scale:
            return f"{name} (max |diff| {diff:.1e})"
    return "the output only (every intermediate agrees)"
