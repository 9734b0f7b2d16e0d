import numpy as np
import pytest

from ich_edge.errors import ConfigError
from ich_edge.transforms import (
    Preprocess,
    PreprocessConfig,
    Resize,
    ToHounsfield,
    ToUint8,
    Window,
)


def test_to_hounsfield_applies_slope_and_intercept():
    stored = np.array([[0, 1024, 2048]], dtype=np.uint16)
    hu = ToHounsfield(slope=1.0, intercept=-1024.0)(stored)
    np.testing.assert_array_equal(hu, [[-1024.0, 0.0, 1024.0]])
    assert hu.dtype == np.float32
    np.testing.assert_allclose(ToHounsfield(0.5, 10.0)(np.array([4])), [12.0])


def test_window_maps_range_linearly_and_clips():
    window = Window(center_hu=40, width_hu=80)
    out = window(np.array([-100.0, 0.0, 40.0, 80.0, 3000.0], np.float32))
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_window_rejects_non_positive_width():
    with pytest.raises(ConfigError, match="width_hu must be > 0"):
        Window(40, 0)


def test_resize_integer_factor_is_block_mean():
    image = np.arange(256, dtype=np.float32).reshape(16, 16)
    out = Resize(8)(image)
    assert out.shape == (8, 8)
    np.testing.assert_allclose(out[0, 0], image[:2, :2].mean())
    np.testing.assert_allclose(out[7, 3], image[14:16, 6:8].mean())


def test_resize_non_integer_factor_preserves_mean_of_constant_and_ramp():
    image = np.full((50, 50), 7.0, np.float32)
    np.testing.assert_allclose(Resize(32)(image), 7.0, rtol=1e-6)
    ramp = np.tile(np.arange(50, dtype=np.float32), (50, 1))
    out = Resize(20)(ramp)
    assert out.shape == (20, 20)
    # Area averaging keeps the mean of a linear ramp and its monotonic order.
    assert abs(out.mean() - ramp.mean()) < 1e-3
    assert np.all(np.diff(out[0]) > 0)


def test_to_uint8_rounds():
    np.testing.assert_array_equal(ToUint8()(np.array([0.0, 0.5, 1.0, 0.999])), [0, 128, 255, 255])


def test_preprocess_blood_is_bright_in_brain_window_and_bone_saturates():
    hu = np.full((64, 64), 30.0, np.float32)  # white matter
    hu[:32, :32] = 70.0  # acute blood
    hu[32:, 32:] = 1500.0  # bone
    out = Preprocess(PreprocessConfig(input_size_px=32))(hu)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    brain, subdural, bone = out[..., 0], out[..., 1], out[..., 2]
    assert brain[0, 0] > brain[0, 31]  # blood brighter than white matter
    assert brain[31, 31] == 255 and subdural[31, 31] == 255  # bone saturates soft-tissue windows
    assert bone[31, 31] > bone[0, 0]
    assert 0 < subdural[0, 0] < 255  # blood unclipped in the subdural window


def test_preprocess_config_validation_and_round_trip():
    config = PreprocessConfig(input_size_px=64)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="3 \\(center, width\\) pairs"):
        PreprocessConfig(windows_hu=((40, 80),), window_names=("brain",))
    with pytest.raises(ConfigError, match="incomplete"):
        PreprocessConfig.from_dict({"windows_hu": [[40, 80]] * 3})
