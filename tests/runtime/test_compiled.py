"""CompiledModel start-up: the file is parsed once, the CPU backend makes no GPU accelerator,
and LiteRT's accelerator lines stay off stderr (tiny model of tests/tiny_app_model.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ich_edge.quiet import DEBUG_ENV

REPO = Path(__file__).resolve().parents[2]
SIZE = 16


def _tiny_app_model():
    spec = importlib.util.spec_from_file_location("tiny_app_model", REPO / "tests" / "tiny_app_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compiled") / "tiny.tflite"
    path.write_bytes(_tiny_app_model().tiny_model_bytes(SIZE, 4, 2))
    return path


def _python(code: str, *args: str, debug: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    env["PYTHONPATH"] = str(REPO)
    if debug:
        env[DEBUG_ENV] = "1"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("runtime", ["interpreter", "compiled"])
def test_opening_a_model_parses_the_file_once(model_path, monkeypatch, runtime):
    """The Python check of the file used to parse it three times (check, then op_summary's own
    check and parse to refuse stateful files): most of CompiledModel's start-up."""
    from ich_edge.runtime import flatbuffer
    from ich_edge.runtime.compiled import CompiledRuntimeStudyModel
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    parses = []
    unpack = flatbuffer.unpack
    monkeypatch.setattr(flatbuffer, "unpack", lambda *a, **k: parses.append(1) or unpack(*a, **k))
    model = (CompiledRuntimeStudyModel if runtime == "compiled" else TFLiteStudyModel)(model_path, num_threads=1)
    assert len(parses) == 1
    images = np.random.default_rng(0).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    assert model.predict_series(images).shape == (5, 6)


def test_cpu_environment_makes_no_gpu_accelerator():
    """``compiled`` on the CPU: its LiteRT environment registers the CPU accelerator and no GPU one
    (LiteRT's default environment loads the WebGPU accelerator beside it)."""
    code = "from ich_edge.runtime.compiled import make_environment; assert make_environment('gpu') is None; make_environment('cpu')"
    done = _python(code, debug=True)
    assert done.returncode == 0, done.stderr
    assert "CpuAccelerator" in done.stderr
    assert "GPU WebGPU" not in done.stderr and "GPU accelerator could not be loaded" in done.stderr


def test_compiled_model_leaves_no_litert_lines_on_stderr_unless_debug(model_path):
    """A process that used a CompiledModel (here outside the CLI, as make demo's assets step does)
    exits without LiteRT's "DestroyAccelerator ... GPU WebGPU" lines; --debug shows them."""
    code = (
        "import sys, numpy as np\n"
        "from ich_edge.runtime.compiled import CompiledRuntimeStudyModel\n"
        "model = CompiledRuntimeStudyModel(sys.argv[1], num_threads=1)\n"
        "model.predict_series(np.zeros((3, 16, 16, 3), np.uint8))\n"
        "print('ran')\n"
    )
    quiet = _python(code, str(model_path))
    assert quiet.returncode == 0 and quiet.stdout.strip() == "ran"
    assert quiet.stderr == ""
    loud = _python(code, str(model_path), debug=True)
    assert loud.returncode == 0 and "DestroyAccelerator" in loud.stderr
