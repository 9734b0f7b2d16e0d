import pytest

from ich_edge.errors import ConfigError
from ich_edge.synth import SynthConfig, parse_slice_range


def test_defaults_are_valid_and_recorded():
    config = SynthConfig()
    data = config.to_dict()
    assert data["matrix_px"] == 512 and data["slices_min"] == 20 and data["slices_max"] == 60
    assert data["generator_version"] >= 1
    from ich_edge.ingest.prepare import default_workers

    assert config.workers == default_workers()  # every usable core, as prepare
    assert "workers" not in data  # the files do not depend on it, so the record does not either


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"studies": 0}, "studies must be an integer >= 1"),
        ({"seed": -1}, "seed must be"),
        ({"matrix_px": 16}, "matrix_px must be in 32..1024"),
        ({"slices_min": 30, "slices_max": 20}, "MIN <= MAX"),
        ({"positive_fraction": 1.5}, "positive_fraction"),
        ({"workers": 0}, "workers must be"),
    ],
)
def test_invalid_options_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**kwargs)


def test_parse_slice_range():
    assert parse_slice_range("28-40") == (28, 40)
    assert parse_slice_range(" 32 ") == (32, 32)
    with pytest.raises(ConfigError, match="MIN-MAX"):
        parse_slice_range("a-b")
