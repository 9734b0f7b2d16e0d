"""benchmarks/int8_design_space.py: the designs it compares and the arithmetic it reports."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "int8_design_space.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("int8_design_space", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_design_maps_a_slice_to_64_features(bench):
    for name in bench.DESIGNS:
        encoder = bench.build_design(name)
        assert encoder.input_shape == (None, bench.SIZE_PX, bench.SIZE_PX, 3), name
        assert encoder.output_shape == (None, 64), name


def test_int8_file_is_smaller_and_runs(bench):
    encoder = bench.build_design("edge@0.5")
    fp32, int8 = bench.convert(encoder, False), bench.convert(encoder, True, calibration_slices=2)
    assert len(int8) < 0.6 * len(fp32)
    assert bench.slice_macs(fp32) == bench.slice_macs(int8) > 0
    bench.make_runner(int8, threads=1)()  # one 32-slice study through XNNPACK, no error


def test_unknown_design_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--designs", "resnet50"])
    assert "unknown design" in capsys.readouterr().err


def test_blocks_cut_the_encoder_after_the_stem_every_block_and_the_top(bench):
    encoder = bench.build_design("edge@0.5")
    cuts = bench._cut_names(encoder)
    assert cuts[0] == "stem_relu" and cuts[-2:] == ["top_relu", "features"]
    # blocks with a skip end in their Add, the others in the projection's batch norm
    assert cuts[1:-2] == [f"block{i}_{'add' if i in (1, 3, 5, 7) else 'project_bn'}" for i in range(1, 9)]
    assert all(encoder.get_layer(name) is not None for name in cuts)
