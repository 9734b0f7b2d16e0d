"""Other runtimes (ich_edge.runtime.emulation): what is provisioned, --platform, and the worker."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest

from ich_edge.errors import ConfigError, MissingDependencyError
from ich_edge.runtime import emulation
from ich_edge.runtime.tflite_model import TFLiteStudyModel
from tiny_app_model import tiny_model_bytes


def _provision(folder, runtimes):
    folder.mkdir(parents=True, exist_ok=True)
    info = {"qemu": "qemu-aarch64", "qemu_version": "qemu-aarch64 version 10.0.2 (Debian)", "cpu": "cortex-a76",
            "sysroot": "root", "runtimes": runtimes}
    (folder / "runtimes.json").write_text(json.dumps(info))
    return folder


def test_unprovisioned_aarch64_names_the_provision_command(tmp_path, monkeypatch):
    monkeypatch.setenv(emulation.ARM_DIR_ENV, str(tmp_path / "none"))
    assert emulation.provisioned_runtimes() == []
    with pytest.raises(MissingDependencyError, match="bash .ci/provision-arm.sh"):
        emulation.select_runtime("aarch64")
    with pytest.raises(ConfigError, match="--platform"):
        emulation.select_runtime("riscv64")
    assert emulation.select_runtime("host") == emulation.native_runtime()


def test_provisioned_runtimes_and_the_newest_aarch64_version(tmp_path, monkeypatch):
    folder = _provision(tmp_path / "arm", [
        {"arch": "aarch64", "litert": "1.4.0", "path": "aarch64/litert-1.4.0", "python": "root/usr/bin/python3.11"},
        {"arch": "aarch64", "litert": "2.3.0", "path": "aarch64/litert-2.3.0", "python": "root/usr/bin/python3.11"},
        {"arch": platform.machine(), "litert": "1.4.0", "path": "x/litert-1.4.0", "python_version": "2.7.0"},
    ])
    monkeypatch.setenv(emulation.ARM_DIR_ENV, str(folder))
    runtimes = emulation.provisioned_runtimes()
    assert [(r.arch, r.litert, r.emulated) for r in runtimes] == [("aarch64", "1.4.0", True), ("aarch64", "2.3.0", True)]
    chosen = emulation.select_runtime("aarch64")
    assert chosen.litert == "2.3.0" and chosen.python[:3] == (str(folder / "qemu-aarch64"), "-cpu", "cortex-a76")
    assert "qemu 10.0.2" in chosen.name and str(tmp_path) not in json.dumps(chosen.to_dict())
    assert emulation.select_runtime("aarch64", "1.4.0").litert == "1.4.0"


def test_the_worker_returns_what_predict_series_returns(tmp_path):
    model = tmp_path / "cnn_lstm_qat-int8.tflite"
    model.write_bytes(tiny_model_bytes(size_px=16, window=4, stride=2))
    rng = np.random.default_rng(0)
    files = []
    for k, slices in enumerate((3, 7)):
        files.append(tmp_path / f"{k}.npy")
        np.save(files[-1], rng.integers(0, 255, (slices, 16, 16, 3), dtype=np.uint8))
    probabilities, features, seconds = emulation.predict_files(emulation.native_runtime(), model, files, features=True)
    local = TFLiteStudyModel(model)
    for path, p, f in zip(files, probabilities, features):
        np.testing.assert_array_equal(p, local.predict_series(np.load(path)))
        np.testing.assert_array_equal(f, local.encode(np.load(path)))
    assert seconds > 0
