"""Per-study time of the browser demo (web_demo/) in headless Chromium, next to the native bench.

    python benchmarks/browser_latency.py [--assets android_demo_assets] [--runs 7]
        [--runtime wasm|webgpu|both] [--out benchmarks/results/]

Serves the page and the assets folder from 127.0.0.1, opens the golden sample's DICOM files
through the page's file input ``--runs`` times in one page (the first run also warms the
JIT; it is reported but left out of the statistics) and writes
``browser_latency_<UTC stamp>_<--machine>.json`` with the median, min, max and quartiles of
the per-study time (from the files handed to the page to the triage on screen: reading and
parsing, decoding and preprocessing, encode per slice, classify, stitching) and of each
stage, plus the one-time model load (fetch, SHA-256, LiteRT.js wasm, compile).

Each row also records the largest difference of the page's probabilities from
``sample/expected.json`` (ai-edge-litert on the desktop CPU) and whether the decisions agree.

WebGPU runs with ``--enable-unsafe-webgpu``: headless Chromium on a machine without a GPU
then offers SwiftShader, Vulkan emulated on the CPU, so that row checks the WebGPU path and
its numbers, not GPU speed (the result names the adapter). Without an adapter the row says so.

Also the helpers the browser test uses (``tests/apps/test_web_demo.py``): :func:`build`,
:func:`serve`, :func:`drive`, :func:`sample_files`, :func:`chromium_path`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web_demo"
DRIVER = WEB / "tools" / "drive.mjs"
DEFAULT_ASSETS = REPO / "android_demo_assets"


def chromium_path() -> str:
    """The Chromium binary: $CHROMIUM, else Debian's /usr/bin/chromium."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def build() -> None:
    """Copy the page's vendor files out of web_demo/node_modules (``node build.mjs``)."""
    subprocess.run(["node", "build.mjs"], cwd=WEB, check=True, capture_output=True, text=True, timeout=120)


def sample_files(assets: Path) -> list[str]:
    """The golden sample's DICOM files, by the manifest's ``sample.dicom_dir``."""
    manifest = json.loads((assets / "manifest.json").read_text(encoding="utf-8"))
    folder = assets / manifest["sample"]["dicom_dir"]
    return sorted(str(path) for path in folder.iterdir() if not path.name.startswith("."))


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
    }

    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass


@contextlib.contextmanager
def serve(assets: Path):
    """Serve web_demo/ and ``assets`` (as /android_demo_assets/) on 127.0.0.1; yields the page URL."""
    with tempfile.TemporaryDirectory(prefix="ich-edge-web-") as root:
        os.symlink(WEB, Path(root) / "web_demo")
        os.symlink(Path(assets).resolve(), Path(root) / "android_demo_assets")
        handler = functools.partial(_Handler, directory=root)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/web_demo/"
        finally:
            server.shutdown()
            server.server_close()


def drive(
    assets: Path,
    steps: list[dict],
    workdir: Path,
    *,
    runtime: str = "wasm",
    screenshot: Path | None = None,
    viewport: tuple[int, int] = (1280, 900),
    device_scale_factor: float = 1,
    extra_args: list[str] | None = None,
    offline_files: list[str] | None = None,
    timeout_s: float = 300,
) -> dict:
    """Run ``steps`` (see web_demo/tools/drive.mjs) in one headless Chromium page; return its report.

    With ``offline_files``, the page is then reloaded with the network cut and must load the
    model from its service worker's copy and triage these files (``report["offline"]``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with serve(assets) as url:
        plan = {
            "url": f"{url}?runtime={runtime}",
            "chromium": chromium_path(),
            "viewport": list(viewport),
            "device_scale_factor": device_scale_factor,
            "extra_args": extra_args or [],
            "screenshot": str(screenshot) if screenshot else None,
            "steps": steps,
            "offline_check": {"files": offline_files} if offline_files else None,
        }
        (workdir / "plan.json").write_text(json.dumps(plan, indent=1), encoding="utf-8")
        out = workdir / "report.json"
        done = subprocess.run(
            ["node", str(DRIVER), str(workdir / "plan.json"), str(out)],
            cwd=WEB, capture_output=True, text=True, timeout=timeout_s,
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"drive.mjs failed (exit {done.returncode}): {done.stderr[-2000:]}")
        return json.loads(out.read_text(encoding="utf-8"))


def _stats(values: list[float]) -> dict:
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {
        "median": round(statistics.median(ordered), 2),
        "min": round(ordered[0], 2),
        "max": round(ordered[-1], 2),
        "p25": round(quartiles[0], 2),
        "p75": round(quartiles[2], 2),
        "n": len(ordered),
    }


def _accuracy(assets: Path, result: dict) -> dict:
    """Largest |page - expected.json| over slice and study probabilities; decisions agree?"""
    manifest = json.loads((assets / "manifest.json").read_text(encoding="utf-8"))
    expected = json.loads((assets / manifest["sample"]["expected"]).read_text(encoding="utf-8"))
    labels = manifest["labels"]
    slice_diff = max(
        abs(page - golden["probabilities"][label])
        for row, golden in zip(result["slice_probabilities"], expected["slices"])
        for page, label in zip(row, labels)
    )
    study_diff = max(abs(page - expected["study"][label]) for page, label in zip(result["study"], labels))
    decisions = [expected["study"][label] >= manifest["thresholds"]["study"][label] for label in labels]
    on_device = (expected.get("tolerance", {}).get("on_device") or {}).get("probabilities_abs")
    return {
        "max_abs_diff_vs_expected": {"slice": slice_diff, "study": study_diff},
        "tolerance": expected["tolerance"]["probabilities_abs"],
        "within_tolerance": max(slice_diff, study_diff) <= expected["tolerance"]["probabilities_abs"],
        "on_device_tolerance": on_device,
        "within_on_device_tolerance": None if on_device is None else max(slice_diff, study_diff) <= on_device,
        "decisions_agree": result["positive"] == decisions,
        "slice_order_agrees": result["slice_ids"] == [s["id"] for s in expected["slices"]],
    }


def measure(assets: Path, runs: int, runtime: str, workdir: Path) -> dict:
    """Open the golden sample ``runs`` + 1 times in one page; statistics over all but the first."""
    extra = ["--enable-unsafe-webgpu"] if runtime == "webgpu" else []
    report = drive(assets, [{"name": "golden", "files": sample_files(assets), "repeat": runs + 1}], workdir,
                   runtime=runtime, extra_args=extra)
    model = report["model"]
    row = {"requested_runtime": runtime, "model_load_ms": model.get("load_ms"), "model_status": model.get("status")}
    if not model.get("ready"):
        row["error"] = model.get("error")
        return row
    if model.get("runtime") != runtime:
        row["error"] = f"{runtime} not available in this browser: {model.get('status')}"
        return row
    timed = report["steps"]["golden"]["runs"]
    errors = [run["error"] for run in timed if run["error"]]
    if errors:
        row["error"] = errors[0]
        return row
    result = report["steps"]["golden"]["result"]
    row.update({
        "runtime": model["runtime"],
        "webgpu_adapter": model.get("adapter"),
        **_accuracy(assets, result),
        "num_slices": result["num_slices"],
        "first_run_ms": round(timed[0]["timing"]["total_ms"], 2),
        "per_study_ms": _stats([run["timing"]["total_ms"] for run in timed[1:]]),
        "stages_ms": {
            stage: _stats([run["timing"][f"{stage}_ms"] for run in timed[1:]])
            for stage in ("read", "preprocess", "model")
        },
        "user_agent": model.get("user_agent"),
    })
    row["per_slice_ms_median"] = round(row["per_study_ms"]["median"] / result["num_slices"], 3)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, default=DEFAULT_ASSETS)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per runtime (after one warm-up run)")
    parser.add_argument("--runtime", choices=("wasm", "webgpu", "both"), default="both")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--machine", default="vm", help="tag in the result file name (as the other benchmarks: vm, h100)")
    args = parser.parse_args(argv)
    build()
    versions = json.loads((WEB / "vendor" / "build.json").read_text(encoding="utf-8"))["versions"]
    manifest = json.loads((args.assets / "manifest.json").read_text(encoding="utf-8"))
    chromium = subprocess.run([chromium_path(), "--version"], capture_output=True, text=True).stdout.strip()
    rows = []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ich-edge-latency-") as tmp:
        for runtime in (("wasm", "webgpu") if args.runtime == "both" else (args.runtime,)):
            row = measure(args.assets, args.runs, runtime, Path(tmp) / runtime)
            rows.append(row)
            if "error" in row:
                print(f"{runtime}: {row['error']}")
            else:
                s = row["per_study_ms"]
                print(f"{runtime}: {s['median']:.1f} ms per study of {row['num_slices']} slices "
                      f"(min {s['min']:.1f}, max {s['max']:.1f}, n={s['n']}); model load {row['model_load_ms']:.0f} ms; "
                      f"max |diff| vs expected.json {row['max_abs_diff_vs_expected']['slice']:.2e}, "
                      f"decisions agree: {row['decisions_agree']}")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    result = {
        "benchmark": "browser_latency",
        "what": "per-study time in the browser demo: golden sample files handed to the page -> triage shown "
                "(read+parse, decode+preprocess, encode per slice, classify windows, stitch); model load separate",
        "created_utc": stamp,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "browser": chromium,
        "headless_flags": "--headless --no-sandbox --disable-gpu; WebGPU row adds --enable-unsafe-webgpu",
        "litertjs": versions,
        "model": {"sha256": manifest["sha256"], "precision": manifest["precision"], "size_bytes": manifest["size_bytes"]},
        "load_average_start_end": [list(load_start), list(os.getloadavg())],
        "note": "times are wall-clock on a shared 2-core machine; a load average far above 2 inflates them",
        "runs": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"browser_latency_{stamp}_{args.machine}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0 if any("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
