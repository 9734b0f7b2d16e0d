"""Calibration windows drawn from the cache, and the representative dataset's order."""

from __future__ import annotations

import numpy as np
import pytest

from converters.calibration import calibration_set, draw_windows, representative_dataset
from ich_edge.errors import ConfigError
from ich_edge.sequence import SequenceConfig, window_indices
from ich_edge.transforms import pixels_to_unit

SEQUENCE = SequenceConfig(4, 2)


def test_windows_are_spread_over_series_and_seeded(tiny_data):
    _, series, _ = tiny_data
    drawn = draw_windows(series, SEQUENCE, 5, seed=3)
    assert len(drawn) == 5
    assert len({index for index, _ in drawn}) == 5  # one window per series before any second one
    assert [(i, r.tolist()) for i, r in drawn] == [(i, r.tolist()) for i, r in draw_windows(series, SEQUENCE, 5, seed=3)]
    everything = draw_windows(series, SEQUENCE, 10_000)
    assert len(everything) == sum(len(window_indices(s.num_slices, SEQUENCE)) for s in series)
    with pytest.raises(ConfigError, match="calibration windows must be >= 1"):
        draw_windows(series, SEQUENCE, 0)
    with pytest.raises(ConfigError, match="no series to calibrate on"):
        draw_windows([], SEQUENCE, 3)


def test_calibration_set_encodes_each_slice_once_and_pads_with_the_blank_slice(tiny_data):
    _, series, _ = tiny_data
    calls = []

    def encoder(batch):  # features: mean of each channel, plus a constant (the blank slice is not zero)
        calls.append(len(batch))
        return np.concatenate([batch.mean(axis=(1, 2)), np.ones((len(batch), 1), np.float32)], axis=1)

    chosen = [s for s in series if s.num_slices < 4] + series[1:3]  # a short series: padding
    calibration = calibration_set(encoder, chosen, SEQUENCE, num_windows=3, seed=1)
    drawn = draw_windows(chosen, SEQUENCE, 3, seed=1)
    distinct = {(index, int(i)) for index, rows in drawn for i in rows if i >= 0}
    assert calibration.windows.shape == (3, 4, 4)
    assert calibration.num_slices == len(distinct) + 1 == sum(calls)  # each slice once, plus the blank
    assert not calibration.images[-1].any()
    short = [k for k, (index, rows) in enumerate(drawn) if index == 0]
    assert short and (drawn[short[0]][1] < 0).any()
    np.testing.assert_allclose(calibration.windows[short[0], -1], [0.0, 0.0, 0.0, 1.0])  # blank slice features


def test_short_series_are_padded_by_the_one_padding_rule(tiny_data, monkeypatch):
    import converters.calibration as calibration

    _, series, _ = tiny_data
    real, calls = calibration.feature_windows, []
    monkeypatch.setattr(calibration, "feature_windows", lambda *args: calls.append(args[1]) or real(*args))
    chosen = [s for s in series if s.num_slices < 4]
    calibration.calibration_set(lambda batch: batch.mean(axis=(1, 2)), chosen, SEQUENCE, num_windows=1)
    assert calls == [SEQUENCE]


def test_representative_dataset_yields_classify_first():
    calibration_images = np.zeros((3, 8, 8, 3), np.uint8)
    calibration_images[1] = 255
    calibration_images[2] = 3  # 3 / 255 and 3 * (1/255) differ in float32: the model input is the latter
    windows = np.ones((2, 4, 5), np.float32)
    from converters.calibration import CalibrationSet

    samples = list(representative_dataset(CalibrationSet(calibration_images, windows))())
    assert [key for key, _ in samples] == ["classify", "classify", "encode", "encode", "encode"]
    assert samples[0][1]["features"].shape == (1, 4, 5)
    image = samples[3][1]["image"]
    assert image.shape == (1, 8, 8, 3) and image.dtype == np.float32 and image.max() == 1.0
    np.testing.assert_array_equal(samples[4][1]["image"], pixels_to_unit(calibration_images[2:3]))
