"""The reference client plays the app on an assets folder, with TensorFlow and ich-edge blocked.

It runs on a tiny assets folder generated here from hand-built models (integer I/O like
qat-int8, and float I/O), always, and on the committed ``android_demo_assets/`` when it
exists. Tolerances are the client's own: exact uint8 tensors, 1e-5 absolute on
probabilities (from expected.json).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest


from ich_edge.assets.build import AssetsConfig, write_assets
from ich_edge.assets.manifest import window_specs
from ich_edge.assets import reference_client as client
from ich_edge.assets.sample import SampleConfig
from ich_edge.precisions import SHIP_ORDER
from ich_edge.sequence import SequenceConfig, window_starts
from ich_edge.transforms import Preprocess, PreprocessConfig
from tiny_app_model import tiny_model_bytes

REPO = Path(__file__).resolve().parents[1]
CLIENT = REPO / "ich_edge" / "assets" / "reference_client.py"
COMMITTED = REPO / "android_demo_assets"
SIZE_PX, WINDOW, STRIDE = 16, 4, 2
BLOCKED = ("tensorflow", "tf_keras", "keras", "ich_edge")


_BLOCKED_RUN = textwrap.dedent(
    """
    import importlib.abc, json, runpy, sys
    BLOCKED = tuple(json.loads(sys.argv[1]))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.startswith(BLOCKED):
                raise ImportError(f"{name} is blocked: the app has no TensorFlow and no ich-edge")
            return None

    sys.meta_path.insert(0, Block())
    for name in BLOCKED:
        sys.modules[name] = None
    sys.argv = [sys.argv[2], *sys.argv[3:]]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = exit.code
    loaded = sorted(n for n, m in sys.modules.items() if m is not None and n.startswith(BLOCKED))
    print(json.dumps({"code": code, "loaded": loaded}))
    """
)


def run_blocked(assets: Path, tmp_path: Path) -> tuple[dict, dict, str]:
    """Run the client as a script in a fresh interpreter with TensorFlow and ich_edge blocked."""
    report_path = tmp_path / "client_report.json"
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKED_RUN, json.dumps(BLOCKED), str(CLIENT), str(assets), "--json", str(report_path)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(done.stdout.strip().splitlines()[-1])
    return status, json.loads(report_path.read_text()), done.stdout


@pytest.fixture(scope="module", params=["int8-io", "float-io"])
def tiny_assets(request, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp(f"client_{request.param}")
    model = folder / "cnn_lstm.tflite"
    quantized = request.param == "int8-io"
    model.write_bytes(tiny_model_bytes(size_px=SIZE_PX, window=WINDOW, stride=STRIDE, quantized_io=quantized,
                                       precision="qat-int8" if quantized else "fp32"))
    out = folder / "assets"
    sample = SampleConfig(matrix_px=64, min_slices=6, max_slices=8)
    write_assets(AssetsConfig(model_path=model, out_dir=out, sample_seed=1, sample=sample, allow_failed_parity=True))
    return out


def test_client_passes_on_tiny_assets_without_tensorflow_or_ich_edge(tiny_assets, tmp_path):
    status, report, stdout = run_blocked(tiny_assets, tmp_path)
    assert status == {"code": 0, "loaded": []}, stdout
    assert report["passed"] and "all checks passed" in stdout
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["preprocessed uint8 images (exact)"]["passed"]
    assert checks["model sha256"]["passed"] and checks["slice probabilities"]["passed"]
    manifest = json.loads((tiny_assets / "manifest.json").read_text())
    # uint8 raw pixels and float32 pixel / 255 are both exact functions of images_uint8.npy:
    # no separate encode input is shipped for either.
    assert manifest["sample"]["encode_input"] is None
    assert "encode input tensor (exact)" not in checks
    assert report["max_abs_diff"]["slice"] <= 1e-5


@pytest.mark.skipif(not (COMMITTED / "manifest.json").is_file(), reason="android_demo_assets/ not generated yet")
def test_client_passes_on_committed_demo_assets(tmp_path):
    status, report, stdout = run_blocked(COMMITTED, tmp_path)
    assert status == {"code": 0, "loaded": []}, stdout
    assert report["passed"]
    manifest = json.loads((COMMITTED / "manifest.json").read_text())
    # make demo ships the first precision of the ship order that passed parity (ich_edge.precisions.SHIP_ORDER)
    assert manifest["precision"] in SHIP_ORDER and manifest["size_bytes"] < 5 * 2**20
    assert manifest["parity"]["passed"] and not manifest["parity"]["allowed_failed_parity"]
    assert manifest["sample"]["ground_truth_study"]["any"] == 1  # a positive study (what the model says is checked above)


def test_client_catches_a_wrong_manifest_and_a_swapped_model(tiny_assets, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_assets, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["preprocessing"]["windows"][0]["low_hu"] = 10.0  # brain window shifted by 10 HU
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with open(broken / "model.tflite", "ab") as handle:
        handle.write(b"\0")
    report = client.run_client(broken)
    failed = {c["check"] for c in report["checks"] if not c["passed"]}
    assert {"model sha256", "preprocessed uint8 images (exact)"} <= failed and not report["passed"]
    assert client.main([str(broken)]) == 1


@pytest.mark.parametrize(("length", "stride"), [(4, 2), (24, 12), (5, 5), (3, 1)])
def test_client_window_rule_is_the_sequence_rule(length, stride):
    config = SequenceConfig(length, stride)
    for n in range(1, 41):
        assert client.window_starts(n, length, stride) == window_starts(n, config)


@pytest.mark.parametrize(("matrix", "size"), [(512, 128), (256, 128), (64, 16), (500, 128), (40, 16)])
def test_client_preprocessing_equals_ich_edge(matrix, size):
    rng = np.random.default_rng(matrix)
    hu = np.rint(rng.normal(40.0, 400.0, (matrix, matrix))).astype(np.float32)
    config = PreprocessConfig(input_size_px=size)
    ours = Preprocess(config)(hu)
    theirs = client.windows_to_uint8(client.area_resize(hu, size), window_specs(config))
    mismatched = np.count_nonzero(ours != theirs)
    if matrix % size == 0:
        assert mismatched == 0  # integer factors: bit-exact
    else:  # other factors: float32 sums in another order; at most a rare off-by-one
        assert mismatched <= ours.size // 1000 and np.abs(ours.astype(int) - theirs).max() <= 1


def test_client_pads_short_series_like_ich_edge(tiny_assets):
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    manifest = json.loads((tiny_assets / "manifest.json").read_text())
    images = np.load(tiny_assets / "sample" / "images_uint8.npy")[:2]  # shorter than one window
    app = client.AppModel(tiny_assets / "model.tflite", manifest)
    probabilities, _ = app.predict_series(images)
    reference = TFLiteStudyModel(tiny_assets / "model.tflite").predict_series(images)
    np.testing.assert_allclose(probabilities, reference, atol=1e-6, rtol=0)


def _converter_fixtures():
    """The converter tests' tiny cache and RUN_DIR writers (tests/converters/conftest.py)."""
    path = REPO / "tests" / "converters" / "conftest.py"
    if not path.is_file():
        pytest.skip("tests/converters/conftest.py (tiny cache and RUN_DIR) is not there")
    import importlib.util

    spec = importlib.util.spec_from_file_location("converter_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "io"), [("int8", "int8"), ("fp32", "float")])
def test_client_passes_on_assets_of_a_converted_model(tmp_path, precision, io):
    """The real file format: a tiny untrained CNN-LSTM through ``ich-edge convert``, then assets."""
    from converters.convert import ConvertConfig, convert_runs

    fixtures = _converter_fixtures()
    series = fixtures.write_cache(tmp_path / "cache")
    run = fixtures.write_run(tmp_path / "run", series)
    # Untrained, the model answers 0.5 everywhere: at thresholds of 0.5 any kernel spread could flip
    # a decision and assets refuses the file (tests/test_assets_kernel_spread.py); decide at 0.4.
    from ich_edge import LABELS
    from ich_edge.training import run as run_lib

    run_lib.write_thresholds(run, 0.9, dict.fromkeys(LABELS, 0.4), dict.fromkeys(LABELS, 0.4))
    (result,) = convert_runs([run], tmp_path / "cache", tmp_path / "tflite",
                             ConvertConfig(precisions=(precision,), calibration_windows=8, io=io), log=lambda line: None)
    out = tmp_path / "assets"
    sample = SampleConfig(matrix_px=64, min_slices=6, max_slices=8)
    write_assets(AssetsConfig(model_path=Path(result["path"]), out_dir=out, sample_seed=0, sample=sample, allow_failed_parity=True))
    status, report, stdout = run_blocked(out, tmp_path)
    assert status == {"code": 0, "loaded": []} and report["passed"], stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["signatures"]["encode"]["inputs"][0]["dtype"] == ("uint8" if io == "int8" else "float32")
