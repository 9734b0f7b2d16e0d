"""``ich_edge.runtime.amx``: a seccomp filter that refuses Intel AMX to a process, and nothing else.

The filter cannot be removed once installed, so every check runs in a child process. Whether
this CPU has AMX is read from /proc/cpuinfo here, independently of the package.
"""

from __future__ import annotations

import errno
import json
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ich_edge.runtime.bench import runner as bench

LINUX_X86_64 = sys.platform == "linux" and platform.machine() == "x86_64"
linux_x86_64 = pytest.mark.skipif(not LINUX_X86_64, reason="AMX and its arch_prctl request exist on x86_64 Linux only")


def _cpu_has_amx() -> bool:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return any(line.startswith("flags") and " amx_int8" in line for line in text.splitlines())


def _child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@linux_x86_64
def test_deny_amx_refuses_the_amx_request_and_lets_other_calls_through():
    before = _child("""
        import json
        from ich_edge.runtime import amx
        print(json.dumps({"amx": amx.amx_request_errno()}))
    """)
    after = _child("""
        import ctypes, json, threading
        from ich_edge.runtime import amx
        amx.deny_amx()
        libc = ctypes.CDLL(None, use_errno=True)
        fs = ctypes.c_ulong(0)
        get_fs = libc.syscall(amx.SYS_ARCH_PRCTL, 0x1003, ctypes.byref(fs))  # ARCH_GET_FS: another arch_prctl
        seen = []
        thread = threading.Thread(target=lambda: seen.append(amx.amx_request_errno()))
        thread.start(); thread.join()
        print(json.dumps({"amx": amx.amx_request_errno(), "get_fs": get_fs, "fs": fs.value, "thread_amx": seen[0]}))
    """)
    assert before["amx"] != errno.EPERM  # granted (0) with AMX, EINVAL without: the kernel's own answer
    assert after["amx"] == errno.EPERM and after["thread_amx"] == errno.EPERM
    assert after["get_fs"] == 0 and after["fs"] != 0


def test_no_amx_backend_is_asked_for_not_measured_by_default():
    assert "xnnpack-no-amx" in bench.parse_backends("xnnpack,xnnpack-no-amx")
    assert "xnnpack-no-amx" not in bench.BenchConfig().backends


@linux_x86_64
def test_no_amx_row_is_measured_where_the_cpu_has_amx_and_unavailable_elsewhere(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_app_model", Path(__file__).parents[1] / "tiny_app_model.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    path = tmp_path / "cnn_lstm_int8.tflite"
    path.write_bytes(tiny.tiny_model_bytes(16, 4, 2))
    config = bench.BenchConfig(threads=(1,), backends=("xnnpack", "xnnpack-no-amx"), runs=3, warmup=1, study_slices=9)
    rows = {row["backend"]: row for row in bench.benchmark([path], config)["rows"]}
    assert rows["xnnpack"]["status"] == "ok"
    if _cpu_has_amx():
        assert rows["xnnpack-no-amx"]["status"] == "ok" and rows["xnnpack-no-amx"]["amx_refused"] is True
        assert "amx_refused" not in rows["xnnpack"]
        assert rows["xnnpack-no-amx"]["nodes"]["delegated_nodes"] == rows["xnnpack"]["nodes"]["delegated_nodes"]
    else:
        assert rows["xnnpack-no-amx"]["status"] == "unavailable"
        assert "no AMX" in rows["xnnpack-no-amx"]["reason"]
    assert bench.failed_rows({"rows": list(rows.values())}) == []
