"""Latency, memory and backend coverage of ich-edge ``.tflite`` models (``ich-edge bench``).

Runtime tier: numpy and ai-edge-litert only, so it runs on the target device.

Each (model, backend, threads) configuration is measured in a fresh Python process
(``python -m ich_edge.runtime.bench --worker ...``) so that peak resident memory is that
configuration's own and one backend's caches cannot speed up the next. In the worker:

* ``init_ms``: opening the model (interpreter creation and signature runners);
* ``first_inference_ms``: the first whole study, which includes delegate preparation
  (XNNPACK packs weights on first use);
* after ``warmup`` untimed runs, ``runs`` timed runs of one slice through ``encode``
  (``slice_latency_ms``) and of a whole ``study_slices``-slice study the way the device
  runs it (encode every slice, classify the windows of the sequence rule, stitch:
  ``study_latency_ms``), plus the two stages of the study timed on their own
  (``stage_latency_ms``: encode all slices / classify all windows);
* ``study_cpu_ms``: process CPU time (all threads) per study: on a shared machine, other
  load inflates wall time much more than CPU time;
* ``peak_rss_mb`` (the process's high-water mark) and ``rss_before_model_mb`` (after
  imports, before the model), and which nodes the backend took
  (:mod:`ich_edge.runtime.coverage`).

Latency statistics report mean, std, min, p50, p90, p99, max and the number of outliers
(runs slower than median + 3 scaled MADs); nothing is dropped from them.

Backends: ``xnnpack`` (LiteRT's default CPU path), ``reference`` (builtin kernels, no
default delegate: the baseline) and ``gpu`` (LiteRT CompiledModel with the GPU accelerator
alone; where it cannot run, the row is ``unavailable`` with LiteRT's reason).
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ich_edge import LABELS
from ich_edge.errors import ConfigError, IchEdgeError
from ich_edge.metrics import roc_auc
from ich_edge.sequence import gather_windows, stitch, window_starts

BACKENDS = ("xnnpack", "reference", "gpu")
#: Slices of the "typical study" timed end to end.
DEFAULT_STUDY_SLICES = 32
RESULT_FORMAT = "ich-edge-bench/1"


def _did_you_mean(value: str, choices) -> str:
    close = difflib.get_close_matches(value, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_backends(text: str) -> tuple[str, ...]:
    """``"xnnpack,reference"`` -> ``("xnnpack", "reference")``; unknown names are an error."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in str(text).split(",") if part.strip()))
    if not names:
        raise ConfigError(f"--backend needs at least one of {', '.join(BACKENDS)}")
    for name in names:
        if name not in BACKENDS:
            raise ConfigError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)}){_did_you_mean(name, BACKENDS)}")
    return names


def parse_threads(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``; each must be a positive integer."""
    try:
        values = tuple(dict.fromkeys(int(part) for part in str(text).split(",") if part.strip()))
    except ValueError as err:
        raise ConfigError(f"--threads takes comma-separated integers such as 1,2,4, got {text!r}") from err
    if not values or min(values) < 1:
        raise ConfigError(f"--threads values must be >= 1, got {text!r}")
    return values


@dataclass(frozen=True)
class BenchConfig:
    """What ``ich-edge bench`` measures.

    Attributes
    ----------
    threads : CPU thread counts to try (the GPU backend runs once, threads do not apply).
    backends : any of :data:`BACKENDS`.
    runs : timed runs per measurement (>= 2, for a standard deviation).
    warmup : untimed runs before timing.
    study_slices : slices of the synthetic study timed end to end.
    seed : seed of the synthetic uint8 input.
    timeout_s : limit for one configuration's worker process.
    """

    threads: tuple[int, ...] = (2,)
    backends: tuple[str, ...] = BACKENDS
    runs: int = 20
    warmup: int = 3
    study_slices: int = DEFAULT_STUDY_SLICES
    seed: int = 0
    timeout_s: float = 900.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "threads", tuple(int(t) for t in self.threads))
        object.__setattr__(self, "backends", tuple(self.backends))
        parse_backends(",".join(self.backends))
        if not self.threads or min(self.threads) < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.runs < 2:
            raise ConfigError(f"--runs must be >= 2 (a spread needs two runs), got {self.runs}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0, got {self.warmup}")
        if self.study_slices < 1:
            raise ConfigError(f"study_slices must be >= 1, got {self.study_slices}")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0, got {self.timeout_s}")

    def to_dict(self) -> dict:
        return asdict(self)


def latency_stats(samples_ms) -> dict:
    """Summary of timed runs in ms; outliers are counted and kept, never dropped."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ConfigError("no timed runs to summarize")
    median = float(np.median(x))
    mad = float(np.median(np.abs(x - median))) * 1.4826
    limit = median + 3.0 * mad if mad > 0 else float("inf")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "min": float(x.min()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(x.max()),
        "outliers": int((x > limit).sum()),
        "outlier_limit": None if np.isinf(limit) else float(limit),
    }


def _timed(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


# --- the worker: one configuration, in its own process ------------------------------------


class _GpuStudy:
    """The GPU model with the study rule of :class:`TFLiteStudyModel` (encode, windows, stitch)."""

    def __init__(self, path: str) -> None:
        from ich_edge.runtime.bench_gpu import CompiledStudyModel
        from ich_edge.runtime.description import read_description
        from ich_edge.sequence import SequenceConfig

        self.model = CompiledStudyModel(path, "gpu")
        self.sequence = SequenceConfig.from_dict(read_description(path)["sequence"])
        self.encode = self.model.encode
        self.classify = self.model.classify

    def windows(self, features: np.ndarray) -> np.ndarray:
        if len(features) < self.sequence.window_slices:
            raise ConfigError("the GPU benchmark times studies of at least one window of slices")
        return gather_windows(features, self.sequence)

    def predict_series(self, images: np.ndarray) -> np.ndarray:
        features = self.encode(images)
        return stitch(self.classify(self.windows(features)), len(features), self.sequence)


def _open(path: str, backend: str, threads: int):
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    if backend == "gpu":
        return _GpuStudy(path)
    return TFLiteStudyModel(path, num_threads=threads, use_xnnpack=backend == "xnnpack")


def _input_size(model) -> int:
    if hasattr(model, "input_size_px"):
        return int(model.input_size_px)
    details = model.model.model.get_input_tensor_details("encode")
    return int(next(iter(details.values()))["shape"][1])


def _coverage(path: str, backend: str, threads: int, model) -> dict:
    from ich_edge.runtime import coverage

    data = Path(path).read_bytes()
    try:
        if backend == "xnnpack":
            per_signature = coverage.xnnpack_coverage(data, num_threads=threads)
        elif backend == "reference":
            per_signature = coverage.builtin_coverage(data)
        else:
            total = sum(c.total_nodes for c in coverage.builtin_coverage(data).values())
            return {"total_nodes": total, "fully_accelerated": bool(model.model.fully_accelerated), "signatures": {}}
    except IchEdgeError as err:
        return {"error": str(err)}
    return {
        "total_nodes": sum(c.total_nodes for c in per_signature.values()),
        "delegated_nodes": sum(c.delegated_nodes for c in per_signature.values()),
        "signatures": {key: c.to_dict() for key, c in per_signature.items()},
    }


def measure(path: str, backend: str, threads: int, runs: int, warmup: int, study_slices: int, seed: int) -> dict:
    """Measure one configuration in this process (see the module docstring for the fields).

    Call it in a fresh process (as :func:`run_configuration` does) for a meaningful peak RSS.
    """
    from ich_edge.runtime.bench_gpu import AcceleratorUnavailable
    from ich_edge.runtime.sysinfo import current_rss_mb, peak_rss_mb

    rss_before = current_rss_mb()
    start = time.perf_counter_ns()
    try:
        model = _open(path, backend, threads)
    except AcceleratorUnavailable as err:
        return {"status": "unavailable", "reason": str(err)}
    init_ms = (time.perf_counter_ns() - start) / 1e6
    size = _input_size(model)
    rng = np.random.default_rng(seed)
    study = rng.integers(0, 256, (study_slices, size, size, 3), dtype=np.uint8)
    one_slice = study[:1]

    start = time.perf_counter_ns()
    model.predict_series(study)
    first_ms = (time.perf_counter_ns() - start) / 1e6

    slice_ms = _timed(lambda: model.encode(one_slice), runs, warmup)
    cpu_start = time.process_time()
    study_ms = _timed(lambda: model.predict_series(study), runs, warmup)
    # CPU time of the whole process (all threads) per study, warm-up runs included.
    study_cpu_ms = (time.process_time() - cpu_start) * 1e3 / (runs + warmup)
    windows = model.windows(model.encode(study))
    encode_ms = _timed(lambda: model.encode(study), runs, min(warmup, 1))
    classify_ms = _timed(lambda: model.classify(windows), runs, min(warmup, 1))
    peak = peak_rss_mb()
    return {
        "status": "ok",
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "slice_latency_ms": latency_stats(slice_ms),
        "study_latency_ms": latency_stats(study_ms),
        "study_cpu_ms": study_cpu_ms,
        "stage_latency_ms": {"encode": latency_stats(encode_ms), "classify": latency_stats(classify_ms)},
        "study_windows": int(len(windows)),
        "rss_before_model_mb": rss_before,
        "peak_rss_mb": peak,
        "nodes": _coverage(path, backend, threads, model),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def _worker_main(argv: list[str]) -> int:
    args, out_path = json.loads(argv[0]), Path(argv[1])
    try:
        result = measure(**args)
    except IchEdgeError as err:
        result = {"status": "failed", "reason": str(err)}
    out_path.write_text(json.dumps(result))
    return 0


def run_configuration(path: str | Path, backend: str, threads: int, config: BenchConfig) -> dict:
    """:func:`measure` one configuration in a fresh Python process; failures become a row status."""
    from ich_edge.runtime.bench_gpu import cause_lines

    args = {
        "path": str(Path(path).resolve()),
        "backend": backend,
        "threads": int(threads),
        "runs": config.runs,
        "warmup": config.warmup,
        "study_slices": config.study_slices,
        "seed": config.seed,
    }
    with tempfile.TemporaryDirectory(prefix="ich-edge-bench-") as folder:
        out_path = Path(folder) / "result.json"
        command = [sys.executable, "-m", "ich_edge.runtime.bench", "--worker", json.dumps(args), str(out_path)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=config.timeout_s, cwd=folder)
        except subprocess.TimeoutExpired:
            return {"status": "failed", "reason": f"timed out after {config.timeout_s:.0f} s"}
        if out_path.is_file():
            return json.loads(out_path.read_text())
    causes = cause_lines(done.stderr) or done.stderr.strip().splitlines()[-3:]
    return {"status": "failed", "reason": f"worker exited with code {done.returncode}: {' | '.join(causes)}"}


# --- the parent: models x backends x threads ------------------------------------------------


def _variant(path: Path) -> tuple[str, dict | None]:
    from ich_edge.runtime.description import read_description

    try:
        description = read_description(path)
    except IchEdgeError:
        stem = path.stem
        return (stem.split("cnn_lstm_", 1)[1] if stem.startswith("cnn_lstm_") else stem), None
    return str(description.get("precision", path.stem)), description


def study_macs(path: Path, description: dict | None, study_slices: int) -> dict:
    """Multiply-accumulates of one ``study_slices`` study: encode x slices + classify x windows."""
    from ich_edge.runtime.coverage import signature_macs
    from ich_edge.sequence import SequenceConfig

    per_signature = signature_macs(path.read_bytes())
    out = {"per_signature": per_signature}
    if description and "sequence" in description and {"encode", "classify"} <= set(per_signature):
        sequence = SequenceConfig.from_dict(description["sequence"])
        windows = len(window_starts(study_slices, sequence))
        out["study"] = per_signature["encode"]["macs"] * study_slices + per_signature["classify"]["macs"] * windows
    return out


def study_auc(path: Path, series_list, threads: int) -> dict:
    """Study-level ROC AUC of a model on cached series (``any`` and each label; mean over labels)."""
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    model = TFLiteStudyModel(path, num_threads=threads)
    scores: dict[str, np.ndarray] = {}
    truth: dict[str, np.ndarray] = {}
    for series in series_list:
        if series.has_study_labels:
            labels = np.asarray(series.study_labels)
        elif series.has_slice_labels and series.num_slices:
            labels = series.slice_labels.max(axis=0)
        else:
            continue
        probs = model.study_probabilities(series.images)
        uid = series.study_uid
        scores[uid] = probs if uid not in scores else np.maximum(scores[uid], probs)
        truth[uid] = labels if uid not in truth else np.maximum(truth[uid], labels)
    if not scores:
        raise ConfigError("--data holds no series with labels; study AUC needs labelled studies")
    uids = sorted(scores)
    y = np.array([truth[u] for u in uids])
    s = np.array([scores[u] for u in uids])
    per_label = {label: roc_auc(y[:, i], s[:, i]) for i, label in enumerate(LABELS)}
    known = [v for v in per_label.values() if not np.isnan(v)]
    return {
        "studies": len(uids),
        "per_label": {k: (None if np.isnan(v) else v) for k, v in per_label.items()},
        "any": None if np.isnan(per_label["any"]) else per_label["any"],
        "mean": float(np.mean(known)) if known else None,
    }


def _load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none): other load skews timings."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _speedups(rows: list[dict]) -> None:
    baseline = {
        (r["backend"], r["threads"]): r["study_latency_ms"]["p50"]
        for r in rows
        if r["variant"] == "fp32" and r["status"] == "ok"
    }
    for row in rows:
        base = baseline.get((row["backend"], row["threads"]))
        ok = row["status"] == "ok" and base is not None
        row["speedup_vs_fp32"] = base / row["study_latency_ms"]["p50"] if ok else None


def benchmark(paths, config: BenchConfig, data: str | Path | None = None, progress=None) -> dict:
    """Benchmark every model on every backend and thread count; returns the result document.

    Parameters
    ----------
    paths : ``.tflite`` files written by ``ich-edge convert``.
    config : what to measure.
    data : optional prepared cache; adds the study-level AUC of each model.
    progress : optional callable receiving one line of text per finished configuration.
    """
    from ich_edge.runtime.sysinfo import machine_info

    load_start = _load_average()
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; pass .tflite files written by `ich-edge convert`")
    series_list = None
    if data is not None:
        from ich_edge.cache import Cache

        series_list = Cache.open(data).load_all()
    models, rows = [], []
    for path in paths:
        variant, description = _variant(path)
        entry = {
            "file": path.name,
            "path": str(path),
            "variant": variant,
            "size_mb": path.stat().st_size / 1e6,
            "macs": study_macs(path, description, config.study_slices) if description else None,
        }
        models.append(entry)
        for backend in config.backends:
            for threads in config.threads if backend != "gpu" else (None,):
                result = run_configuration(path, backend, threads or 1, config)
                row = {"file": path.name, "variant": variant, "backend": backend, "threads": threads, **result}
                rows.append(row)
                if progress is not None:
                    progress(f"{path.name} {backend} threads={threads or '-'}: {row['status']}")
        if series_list is not None and description is not None:
            # After the timings, so accuracy work never overlaps a timed run.
            entry["study_auc"] = study_auc(path, series_list, max(config.threads))
    _speedups(rows)
    return {
        "format": RESULT_FORMAT,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "config": config.to_dict(),
        "data": None if data is None else str(data),
        "load_average_start_end": [load_start, _load_average()],
        "models": models,
        "rows": rows,
    }


def default_results_dir() -> Path | None:
    """``benchmarks/results`` of the source checkout ich-edge runs from, when there is one."""
    folder = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    return folder if folder.is_dir() else None


def result_file_name(result: dict, prefix: str = "bench") -> str:
    """``<prefix>_<UTC timestamp>_<host>.json``: one file per run, sortable by time."""
    stamp = result["created_utc"].replace("-", "").replace(":", "")
    return f"{prefix}_{stamp}_{result['machine']['host']}.json"


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        sys.exit(_worker_main(sys.argv[2:]))
    sys.exit("usage: python -m ich_edge.runtime.bench --worker ARGS_JSON OUT_JSON (use `ich-edge bench`)")
