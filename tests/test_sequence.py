import numpy as np
import pytest

from ich_edge.errors import ConfigError
from ich_edge.sequence import (
    SequenceConfig,
    gather_windows,
    stitch,
    study_probabilities,
    window_indices,
    window_starts,
)

CONFIG = SequenceConfig(window_slices=4, stride_slices=2)


@pytest.mark.parametrize(
    "num_slices, expected",
    [(1, [0]), (4, [0]), (5, [0, 1]), (6, [0, 2]), (9, [0, 2, 4, 5]), (10, [0, 2, 4, 6])],
)
def test_window_starts_cover_every_slice_without_running_past_the_end(num_slices, expected):
    starts = window_starts(num_slices, CONFIG)
    assert starts == expected
    covered = set()
    for start in starts:
        covered.update(range(start, min(start + 4, num_slices)))
    assert covered == set(range(num_slices))


def test_short_study_is_padded_at_the_end():
    idx = window_indices(3, CONFIG)
    np.testing.assert_array_equal(idx, [[0, 1, 2, -1]])
    windows = gather_windows(np.arange(1, 4, dtype=np.float32)[:, None], CONFIG)
    np.testing.assert_array_equal(windows[0, :, 0], [1, 2, 3, 0])


def test_stitch_averages_overlaps_and_drops_padding():
    num_slices = 6
    windows = gather_windows(np.zeros((num_slices, 1)), CONFIG)  # starts 0, 2
    outputs = np.zeros((windows.shape[0], 4, 1), np.float32)
    outputs[0, :, 0] = [1, 1, 1, 1]
    outputs[1, :, 0] = [3, 3, 3, 3]
    stitched = stitch(outputs, num_slices, CONFIG)
    np.testing.assert_allclose(stitched[:, 0], [1, 1, 2, 2, 3, 3])
    padded = stitch(np.ones((1, 4, 6), np.float32), 3, CONFIG)
    assert padded.shape == (3, 6)


def test_stitch_rejects_wrong_shape():
    with pytest.raises(ConfigError, match="expected window outputs"):
        stitch(np.zeros((1, 4, 6)), 9, CONFIG)


def test_identity_model_round_trips_through_windows():
    rng = np.random.default_rng(0)
    for num_slices in (1, 3, 4, 7, 24, 41):
        per_slice = rng.random((num_slices, 6)).astype(np.float32)
        windows = gather_windows(per_slice, SequenceConfig())
        np.testing.assert_allclose(stitch(windows, num_slices, SequenceConfig()), per_slice, rtol=1e-6)


def test_study_probability_is_max_over_slices():
    probs = np.array([[0.1, 0.9], [0.5, 0.2]])
    np.testing.assert_allclose(study_probabilities(probs), [0.5, 0.9])


def test_config_validation():
    with pytest.raises(ConfigError, match="stride_slices"):
        SequenceConfig(window_slices=4, stride_slices=5)
    with pytest.raises(ConfigError, match="window_slices"):
        SequenceConfig(window_slices=1, stride_slices=1)
    assert SequenceConfig.from_dict(CONFIG.to_dict()) == CONFIG


def test_feature_windows_pads_with_the_blank_features_only_when_short():
    from ich_edge.sequence import feature_windows

    config = SequenceConfig(4, 2)
    features = np.arange(3 * 2, dtype=np.float32).reshape(3, 2) + 1
    calls = []

    def blank():
        calls.append(1)
        return np.array([-7.0, -9.0], np.float32)

    windows = feature_windows(features, config, blank)
    assert windows.shape == (1, 4, 2) and calls == [1]
    np.testing.assert_array_equal(windows[0, :3], features)
    np.testing.assert_array_equal(windows[0, 3], [-7.0, -9.0])
    long = np.ones((6, 2), np.float32)
    assert feature_windows(long, config, blank).shape == (2, 4, 2) and calls == [1]


def test_pixels_to_unit_is_the_float32_multiplication_the_apps_do():
    from ich_edge.transforms import UNIT_PER_PIXEL, pixels_to_unit

    pixels = np.arange(256, dtype=np.uint8)
    unit = pixels_to_unit(pixels)
    assert unit.dtype == np.float32 and UNIT_PER_PIXEL.dtype == np.float32
    np.testing.assert_array_equal(unit, pixels.astype(np.float32) * np.float32(1.0 / 255.0))
    # the division differs in the last bit for some values: this is why there is one owner
    assert (unit != pixels.astype(np.float32) / np.float32(255.0)).sum() > 0
