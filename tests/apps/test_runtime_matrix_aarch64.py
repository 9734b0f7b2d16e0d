"""The golden sample on the kernels apps run: emulated aarch64 LiteRT and a second LiteRT version.

The committed ``android_demo_assets/`` go through the reference client (the app's view) on
every runtime ``.ci/provision-arm.sh`` installed: aarch64 (qemu-user) with the oldest LiteRT
the snippets target and the current one, and x86_64 with the oldest. Each must reproduce
``sample/`` within the tolerances the assets state, with the golden study decisions.
Skipped when not provisioned; under CI=true that fails (CI provisions it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_tools import require
from ich_edge.assets.runtime_matrix import runtime_matrix
from ich_edge.runtime.emulation import PROVISION_COMMAND, native_runtime, provisioned_runtimes

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "android_demo_assets"


def test_golden_sample_on_aarch64_and_a_second_litert_version():
    runtimes = provisioned_runtimes()
    aarch64 = {r.litert for r in runtimes if r.arch == "aarch64"}
    host = native_runtime()
    other_versions = {r.litert for r in runtimes if r.arch == host.arch} - {host.litert}
    require(len(aarch64) >= 2 and bool(other_versions),
            "emulated aarch64 LiteRT (two versions) and a second x86_64 LiteRT version", PROVISION_COMMAND)
    if not (ASSETS / "manifest.json").is_file():
        pytest.skip("no committed android_demo_assets/ (make release-assets writes it)")
    expected = json.loads((ASSETS / "sample" / "expected.json").read_text())["positive"]
    rows = runtime_matrix(ASSETS, runtimes)
    for row in rows:
        assert row["status"] == "ok", f"{row['name']}: {row['status']}"
        assert row["positive"] == expected, f"{row['name']}: study decisions {row['positive']} != golden {expected}"
        assert row["passed"], f"{row['name']}: {row['failed_checks']}"
    assert {r["litert"] for r in rows if r["arch"] == "aarch64"} == aarch64


def test_assets_measure_the_on_device_bounds_on_aarch64_and_every_litert_version(tmp_path):
    from tiny_app_model import tiny_model_bytes

    from ich_edge.assets.build import AssetsConfig, write_assets
    from ich_edge.assets.sample import SampleConfig

    runtimes = provisioned_runtimes()
    require(any(r.arch == "aarch64" for r in runtimes), "emulated aarch64 LiteRT", PROVISION_COMMAND)
    model = tmp_path / "cnn_lstm_qat-int8.tflite"
    model.write_bytes(tiny_model_bytes(size_px=16, window=4, stride=2))
    out = tmp_path / "assets"
    write_assets(AssetsConfig(model_path=model, out_dir=out, sample_seed=1, allow_failed_parity=True,
                              sample=SampleConfig(matrix_px=64, min_slices=6, max_slices=8, other_runtimes=True)))
    on_device = json.loads((out / "manifest.json").read_text())["sample"]["tolerance"]["on_device"]
    assert set(on_device["measured_max_abs_difference"]) >= {r.name for r in runtimes}
    assert set(on_device["measured_features_max_abs_difference"]) >= {r.name for r in runtimes}
    assert on_device["not_measured"] == []
    assert "Not measured" not in (out / "README.md").read_text()


@pytest.mark.slow
def test_predict_and_bench_run_on_emulated_aarch64(tmp_path):
    from ich_edge.runtime.emulation import select_runtime

    require(any(r.arch == "aarch64" for r in provisioned_runtimes()), "emulated aarch64 LiteRT", PROVISION_COMMAND)
    runtime = select_runtime("aarch64")
    model = ASSETS / "model.tflite"
    done = runtime.run(["-m", "ich_edge", "predict", "--model", model, "--dicom", ASSETS / "sample" / "dicom", "--json"],
                       1800, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    study = json.loads(done.stdout)[0]["study"]
    expected = json.loads((ASSETS / "sample" / "expected.json").read_text())["study"]
    assert max(abs(study[k] - expected[k]) for k in expected) <= 1e-5
    done = runtime.run(["-m", "ich_edge", "bench", "--model", model, "--threads", "1", "--backend", "xnnpack", "--runs", "2",
                        "--warmup", "1", "--study-slices", "4", "--out", tmp_path / "bench.json"], 1800, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("EMULATED CPU (qemu-aarch64")
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["machine"]["machine"] == "aarch64" and result["machine"]["emulated"].startswith("qemu-aarch64")
    assert [row["status"] for row in result["rows"]] == ["ok"]
