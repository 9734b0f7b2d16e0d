"""The golden sample on every runtime an app may ship: architecture x ai-edge-litert version.

:func:`runtime_matrix` runs the reference client (``reference_client.py``, the app's view:
the assets folder only) on an assets folder under each runtime of
:func:`ich_edge.runtime.emulation.all_runtimes` (this Python, emulated aarch64 and other
LiteRT versions provisioned by ``.ci/provision-arm.sh``), in parallel, and returns one row
per runtime: the client's max |diff| against ``sample/`` (features, slice and study
probabilities), whether its study decisions are the golden ones, and which checks failed.
"""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ich_edge.runtime.emulation import Runtime, all_runtimes

CLIENT = Path(__file__).with_name("reference_client.py")


def client_row(runtime: Runtime, assets: Path, timeout_s: float = 900.0) -> dict:
    """The reference client's result on ``assets`` under ``runtime`` (never raises for a crash:
    the row says ``status`` and the last lines of its output)."""
    with tempfile.TemporaryDirectory(prefix="ich_edge_matrix_") as work:
        out = Path(work) / "client.json"
        try:
            done = runtime.run([CLIENT, Path(assets).resolve(), "--json", out, "--threads", "1"], timeout_s,
                               with_package=False, cwd=work)
        except Exception as err:  # noqa: BLE001 - a timeout is a row, not the end of the matrix
            return {**runtime.to_dict(), "name": runtime.name, "status": f"error: {err}"}
        if not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return {**runtime.to_dict(), "name": runtime.name, "status": f"crashed (exit {done.returncode}): " + " | ".join(tail)}
        report = json.loads(out.read_text(encoding="utf-8"))
    expected = {c["check"]: c for c in report["checks"]}
    return {
        **runtime.to_dict(),
        "name": runtime.name,
        "status": "ok",
        "passed": report["passed"],
        "max_abs_diff": report["max_abs_diff"],
        "positive": report["positive"],
        "decisions_agree": expected["study decisions"]["passed"],
        "failed_checks": [f"{c['check']}: {c['detail']}" for c in report["checks"] if not c["passed"]],
    }


def runtime_matrix(assets: str | Path, runtimes: list[Runtime] | None = None, workers: int = 4) -> list[dict]:
    """One :func:`client_row` per runtime (default: :func:`all_runtimes`), runs in parallel."""
    runtimes = all_runtimes() if runtimes is None else runtimes
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda r: client_row(r, Path(assets)), runtimes))
