"""Per-study time of the browser demo (web_demo/) in headless Chromium, next to the native bench.

    python benchmarks/browser_latency.py [--assets android_demo_assets] [--runs 7]
        [--runtime wasm|webgpu|both] [--threads 1,2] [--out benchmarks/results/]

Serves the page and the assets folder from 127.0.0.1, opens the golden sample's DICOM files
through the page's file input ``--runs`` times in one page (the first run also warms the
JIT; it is reported but left out of the statistics) and writes
``browser_latency_<UTC stamp>_<--machine>.json`` with the median, min, max and quartiles of
the per-study time (from the files handed to the page to the triage on screen: reading and
parsing, decoding and preprocessing, encode per slice, classify, stitching) and of each
stage, plus the one-time model load (fetch, SHA-256, LiteRT.js wasm, compile).

Each row also records the largest difference of the page's probabilities from
``sample/expected.json`` (ai-edge-litert on the desktop CPU) and whether the decisions agree,
whether the page was cross-origin isolated, the LiteRT.js build it loaded and the CPU threads
the model ran on (wasm rows run once per ``--threads`` value, ``?threads=N``).

The server sends COOP/COEP headers (``--no-isolation-headers``: it does not, and the page
isolates itself through its service worker, as on a plain static host). In the same run, the
native side on the same files and thread counts (``native``): ``predict``'s path end to end
(``find_series``, read, preprocess, model: ``ich_edge.runtime.predict.predict_path``) and the
model stage alone (``predict_series`` on the sample's uint8 images, XNNPACK), with the ratios
browser / native.

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
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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


#: What makes a page cross-origin isolated (so LiteRT.js may load its threaded wasm build).
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    isolation = True  # send ISOLATION_HEADERS
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
    }

    def end_headers(self):
        if self.isolation:
            for name, value in ISOLATION_HEADERS.items():
                self.send_header(name, value)
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass


@contextlib.contextmanager
def serve(assets: Path, isolation: bool = True):
    """Serve web_demo/ and ``assets`` (as /android_demo_assets/) on 127.0.0.1; yields the page URL.

    ``isolation``: send the COOP/COEP headers (else the page's service worker adds them).
    """
    with tempfile.TemporaryDirectory(prefix="ich-edge-web-") as root:
        os.symlink(WEB, Path(root) / "web_demo")
        os.symlink(Path(assets).resolve(), Path(root) / "android_demo_assets")
        handler = functools.partial(type("Handler", (_Handler,), {"isolation": isolation}), directory=root)
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
    isolation: bool = True,
    query: str = "",
) -> dict:
    """Run ``steps`` (see web_demo/tools/drive.mjs) in one headless Chromium page; return its report.

    With ``offline_files``, the page is then reloaded with the network cut and must load the
    model from its service worker's copy and triage these files (``report["offline"]``).
    ``isolation``: the server sends COOP/COEP; ``query``: more URL parameters (``&threads=2``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with serve(assets, isolation) as url:
        plan = {
            "url": f"{url}?runtime={runtime}{query}",
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


def measure(assets: Path, runs: int, runtime: str, workdir: Path, threads: int | None = None, isolation: bool = True,
            worker: bool = True) -> dict:
    """Open the golden sample ``runs`` + 1 times in one page; statistics over all but the first."""
    extra = ["--enable-unsafe-webgpu"] if runtime == "webgpu" else []
    query = (f"&threads={threads}" if threads else "") + ("" if worker else "&worker=0")
    report = drive(assets, [{"name": "golden", "files": sample_files(assets), "repeat": runs + 1}], workdir,
                   runtime=runtime, extra_args=extra, isolation=isolation, query=query)
    model = report["model"]
    row = {"requested_runtime": runtime, "requested_threads": threads, "model_load_ms": model.get("load_ms"),
           "model_status": model.get("status"), "isolated": model.get("isolated"), "threads": model.get("threads"),
           "litertjs_build": model.get("build"), "decoding": model.get("decoding")}
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


def native(assets: Path, runs: int, threads: int) -> dict:
    """The native side on the same sample: predict's whole path and the model stage alone (XNNPACK).

    Medians over ``runs`` after one warm-up: ``predict_ms`` (``predict_path``: find_series, read,
    preprocess, model, as ``ich-edge predict`` runs it without printing), its stages, and
    ``model_ms`` (``predict_series`` on ``sample/images_uint8.npy``: encode + classify + stitch).
    """
    import time

    import numpy as np

    from ich_edge.runtime.predict import load_model, predict_path

    manifest = json.loads((assets / "manifest.json").read_text(encoding="utf-8"))
    model = load_model(assets / manifest["model"], num_threads=threads)
    images = np.load(assets / manifest["sample"]["images_uint8"])
    dicom = assets / manifest["sample"]["dicom_dir"]
    totals, stages, model_ms = [], {"scan": [], "read": [], "preprocess": [], "inference": []}, []
    for index in range(runs + 1):
        start = time.perf_counter()
        prediction = predict_path(model, dicom)
        total = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        model.predict_series(images)
        alone = (time.perf_counter() - start) * 1e3
        if index == 0:
            continue  # warm-up
        totals.append(total)
        model_ms.append(alone)
        (series,) = prediction.series
        stages["scan"].append(prediction.scan_ms)
        for key in ("read", "preprocess", "inference"):
            stages[key].append(series.timing_ms[key])
    return {
        "threads": threads,
        "backend": "xnnpack (ai-edge-litert Interpreter)",
        "predict_ms": _stats(totals),
        "predict_stages_ms": {key: _stats(values) for key, values in stages.items()},
        "model_ms": _stats(model_ms),
    }


def _ratios(rows: list[dict], natives: list[dict]) -> list[dict]:
    """browser / native per wasm row with the same thread count: model stage and whole study."""
    by_threads = {n["threads"]: n for n in natives}
    ratios = []
    for row in rows:
        twin = by_threads.get(row.get("threads"))
        if "error" in row or row.get("runtime") != "wasm" or twin is None:
            continue
        ratios.append({
            "threads": row["threads"],
            "decoding": row["decoding"],
            "model_stage_browser_over_native": round(row["stages_ms"]["model"]["median"] / twin["model_ms"]["median"], 2),
            "study_browser_over_native_predict": round(row["per_study_ms"]["median"] / twin["predict_ms"]["median"], 2),
        })
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, default=DEFAULT_ASSETS)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per runtime (after one warm-up run)")
    parser.add_argument("--runtime", choices=("wasm", "webgpu", "both"), default="both")
    parser.add_argument("--threads", default="", help="wasm CPU threads to run, e.g. 1,2 (default: the page's choice, every core)")
    parser.add_argument("--no-worker", action="store_true", help="also run each wasm row with decoding on the page's thread (?worker=0)")
    parser.add_argument("--no-isolation-headers", action="store_true",
                        help="serve without COOP/COEP: the page must isolate itself through its service worker")
    parser.add_argument("--no-native", action="store_true", help="skip the native side")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--machine", default="vm", help="tag in the result file name (as the other benchmarks: vm, h100)")
    args = parser.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()] or [None]
    build()
    versions = json.loads((WEB / "vendor" / "build.json").read_text(encoding="utf-8"))["versions"]
    manifest = json.loads((args.assets / "manifest.json").read_text(encoding="utf-8"))
    chromium = subprocess.run([chromium_path(), "--version"], capture_output=True, text=True).stdout.strip()
    from ich_edge.runtime.bench.envelope import envelope, shown, write_result

    result = envelope("ich-edge-browser-latency/1", benchmark="browser_latency")  # the load average before the runs
    rows = []
    workers = (True, False) if args.no_worker else (True,)
    plan = [("wasm", t, w) for t in thread_counts for w in workers] if args.runtime in ("wasm", "both") else []
    plan += [("webgpu", None, True)] if args.runtime in ("webgpu", "both") else []
    with tempfile.TemporaryDirectory(prefix="ich-edge-latency-") as tmp:
        for index, (runtime, threads, worker) in enumerate(plan):
            row = measure(args.assets, args.runs, runtime, Path(tmp) / str(index), threads, not args.no_isolation_headers, worker)
            rows.append(row)
            if "error" in row:
                print(f"{runtime}: {row['error']}")
            else:
                s, st = row["per_study_ms"], row["stages_ms"]
                print(f"{runtime} ({row['threads']} thread(s), build {row['litertjs_build']}, isolated {row['isolated']}, "
                      f"decoding in {row['decoding']}): {s['median']:.1f} ms per study of {row['num_slices']} slices "
                      f"(read {st['read']['median']:.1f}, preprocess {st['preprocess']['median']:.1f}, "
                      f"model {st['model']['median']:.1f}; n={s['n']}); model load {row['model_load_ms']:.0f} ms; "
                      f"max |diff| vs expected.json {row['max_abs_diff_vs_expected']['slice']:.2e}, "
                      f"decisions agree: {row['decisions_agree']}")
    natives = []
    if not args.no_native:
        counts = sorted({row["threads"] for row in rows if row.get("threads")} | {t for t in thread_counts if t})
        for threads in counts:
            natives.append(native(args.assets, args.runs, threads))
            n = natives[-1]
            print(f"native xnnpack {threads} thread(s): predict {n['predict_ms']['median']:.1f} ms per study, "
                  f"model stage {n['model_ms']['median']:.1f} ms")
    ratios = _ratios(rows, natives)
    for ratio in ratios:
        print(f"{ratio['threads']} thread(s), decoding in {ratio['decoding']}: browser model stage {ratio['model_stage_browser_over_native']:.2f}x native, "
              f"browser study {ratio['study_browser_over_native_predict']:.2f}x native predict")
    result.update({
        "what": "per-study time in the browser demo: golden sample files handed to the page -> triage shown "
                "(read+parse, decode+preprocess in a Web Worker beside the model, encode per slice, classify windows, "
                "stitch); model load separate. native: predict_path on the same files, and the model stage alone",
        "browser": chromium,
        "headless_flags": "--headless --no-sandbox --disable-gpu; WebGPU row adds --enable-unsafe-webgpu",
        "server_isolation_headers": not args.no_isolation_headers,
        "litertjs": versions,
        "model": {"sha256": manifest["sha256"], "precision": manifest["precision"], "size_bytes": manifest["size_bytes"]},
        "note": "times are wall-clock on a shared 2-core machine; a load average far above 2 inflates them",
        "runs": rows,
        "native": natives,
        "ratios": ratios,
    })
    print(f"wrote {shown(write_result(result, 'browser_latency', args.out, host=args.machine))}")
    return 0 if any("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
