"""Latency, memory and backend coverage of ich-edge ``.tflite`` models (``ich-edge bench``).

Runtime tier: numpy and ai-edge-litert only, so it runs on the target device.

Each (model, backend, threads) configuration is measured in a fresh Python process
(``python -m ich_edge.runtime.bench.worker ...``) so that peak resident memory is that
configuration's own and one backend's caches cannot speed up the next. In the worker:

* ``import_ms``: importing LiteRT's Python modules for the backend, once per process
  (``ai_edge_litert.compiled_model`` imports ``ml_dtypes``, most of a second of CPU with
  numpy 2.4, which an app pays once, not per model);
* ``init_ms``: opening the model after those imports (the Python check of the file,
  interpreter creation and signature runners, and for CompiledModel backends its
  environment and compilation);
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

Backends: ``xnnpack`` (the Interpreter with LiteRT's default CPU path), ``reference``
(builtin kernels, no default delegate: the baseline), ``compiled`` (LiteRT's CompiledModel
API with its CPU accelerator, as current Android apps run it), ``gpu`` (CompiledModel with
the GPU accelerator alone, both signatures) and ``gpu+cpu`` (``encode`` on the GPU
accelerator, ``classify`` on XNNPACK). Where a GPU backend cannot run, the row is
``unavailable`` with LiteRT's reason.

Every model file is opened once (:meth:`ich_edge.runtime.model_file.ModelFile.open`: read,
checked, hashed) before any measurement, so a damaged or foreign file is one
:class:`~ich_edge.errors.ModelError`; its description, hash and MACs come from that one read.
A row that was requested and could be run but failed to measure (a worker that crashed or
timed out, a failed round) is listed by :func:`failed_rows`; ``ich-edge bench`` then exits 3.
An ``unavailable`` row (hardware or accelerator absent) is not a failure.
"""

from __future__ import annotations

import difflib
import json
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ich_edge.errors import ConfigError, ModelError
from ich_edge.metrics import roc_auc
from ich_edge.precisions import FP32
from ich_edge.runtime.bench import envelope
from ich_edge.runtime.bench.worker import latency_stats
from ich_edge.sequence import window_starts
from ich_edge.study_truth import labelled_studies, study_level, study_truth

BACKENDS = ("xnnpack", "reference", "compiled", "gpu", "gpu+cpu", "xnnpack-no-amx")
#: What ``--backend`` measures unless told: every backend but ``xnnpack-no-amx`` (a second XNNPACK row,
#: for CPUs with Intel AMX only).
DEFAULT_BACKENDS = BACKENDS[:5]
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
    threads : CPU thread counts to try (``gpu`` runs once, threads do not apply; ``gpu+cpu``
        gives them to its CPU part).
    backends : any of :data:`BACKENDS`.
    runs : timed runs per measurement (>= 2, for a standard deviation).
    warmup : untimed runs before timing.
    study_slices : slices of the synthetic study timed end to end.
    seed : seed of the synthetic uint8 input.
    timeout_s : limit for one configuration's worker process.
    rounds : times the whole grid is measured, configuration after configuration, each time
        in fresh processes; samples are pooled. On a shared machine, several rounds spread
        other load over all configurations instead of hitting one of them.
    """

    threads: tuple[int, ...] = (2,)
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    runs: int = 20
    warmup: int = 3
    study_slices: int = DEFAULT_STUDY_SLICES
    seed: int = 0
    timeout_s: float = 900.0
    rounds: int = 1

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
        if self.rounds < 1:
            raise ConfigError(f"--rounds must be >= 1, got {self.rounds}")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0, got {self.timeout_s}")

    def to_dict(self) -> dict:
        return asdict(self)


def run_configuration(path: str | Path, backend: str, threads: int, config: BenchConfig) -> dict:
    """:func:`measure` one configuration in a fresh Python process; failures become a row status."""
    from ich_edge.runtime.litert_compiled import cause_lines
    from ich_edge.runtime.emulation import python_command

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
        command = [*python_command(), "-m", "ich_edge.runtime.bench.worker", json.dumps(args), str(out_path)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=config.timeout_s, cwd=folder)
        except subprocess.TimeoutExpired:
            return {"status": "failed", "reason": f"timed out after {config.timeout_s:.0f} s"}
        if out_path.is_file():
            return json.loads(out_path.read_text())
    causes = cause_lines(done.stderr) or done.stderr.strip().splitlines()[-3:]
    return {"status": "failed", "reason": f"worker exited with code {done.returncode}: {' | '.join(causes)}"}


# --- the parent: models x backends x threads ------------------------------------------------


def study_macs(model: str | Path | bytes, description: dict | None, study_slices: int) -> dict:
    """Multiply-accumulates of one ``study_slices`` study: encode x slices + classify x windows.

    ``model``: the file's bytes (as :class:`~ich_edge.runtime.model_file.ModelFile` read
    them) or its path.
    """
    from ich_edge.runtime.coverage import signature_macs
    from ich_edge.sequence import SequenceConfig

    per_signature = signature_macs(model if isinstance(model, bytes) else Path(model).read_bytes())
    out = {"per_signature": per_signature}
    if description and "sequence" in description and {"encode", "classify"} <= set(per_signature):
        sequence = SequenceConfig.from_dict(description["sequence"])
        windows = len(window_starts(study_slices, sequence))
        out["study"] = per_signature["encode"]["macs"] * study_slices + per_signature["classify"]["macs"] * windows
    return out


def study_auc(model_file, series_list, threads: int) -> dict:
    """Study-level ROC AUC of a model on cached series (``any`` and each label; mean over labels).

    ``model_file``: a :class:`~ich_edge.runtime.model_file.ModelFile` or a ``.tflite`` path.
    Truth and scores follow :mod:`ich_edge.study_truth` (as ``ich-edge parity`` does): a
    study's score is the max over all its series, labelled or not; studies whose labels are
    not all known are left out (their series are not run).
    """
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    model = TFLiteStudyModel(model_file, num_threads=threads)
    series_list = [s.with_labels(model.labels) for s in series_list]  # the cache's columns of the model's labels
    labelled = set(labelled_studies(study_truth(series_list)))
    if not labelled:
        raise ConfigError("--data holds no series with labels; study AUC needs labelled studies")
    series_list = [s for s in series_list if s.study_uid in labelled]
    level = study_level(series_list, [model.predict_series(s.images) for s in series_list], len(model.labels))
    uids, y, s = level["study_uids"], level["study_true"], level["study_scores"]
    per_label = {label: roc_auc(y[:, i], s[:, i]) for i, label in enumerate(model.labels)}
    known = [v for v in per_label.values() if not np.isnan(v)]
    return {
        "studies": len(uids),
        "per_label": {k: (None if np.isnan(v) else v) for k, v in per_label.items()},
        "any": None if np.isnan(per_label.get("any", np.nan)) else per_label["any"],
        "mean": float(np.mean(known)) if known else None,
    }


def merge_rounds(results: list[dict]) -> dict:
    """One row from a configuration's rounds: samples pooled, one-off times as medians.

    Timing statistics are recomputed over every timed run of every round; init and first
    inference are medians over rounds, peak memory the largest. A configuration whose
    rounds did not all succeed reports its failures in ``failed_rounds``.
    """
    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        return {**results[0], "rounds": len(results)}
    merged = dict(ok[0])
    if len(ok) > 1:
        pooled = {key: [x for r in ok for x in r["samples_ms"][key]] for key in ok[0]["samples_ms"]}
        merged.update({
            "init_ms": float(np.median([r["init_ms"] for r in ok])),
            "import_ms": float(np.median([r.get("import_ms", 0.0) for r in ok])),
            "first_inference_ms": float(np.median([r["first_inference_ms"] for r in ok])),
            "slice_latency_ms": latency_stats(pooled["slice"]),
            "study_latency_ms": latency_stats(pooled["study"]),
            "stage_latency_ms": {"encode": latency_stats(pooled["encode"]), "classify": latency_stats(pooled["classify"])},
            "study_cpu_ms": float(np.median([r["study_cpu_ms"] for r in ok])),
            "peak_rss_mb": max(r["peak_rss_mb"] or 0.0 for r in ok),
            "samples_ms": pooled,
        })
    merged["rounds"] = len(results)
    merged["round_study_p50_ms"] = [r["study_latency_ms"]["p50"] for r in ok]
    failed = [r.get("reason", r["status"]) for r in results if r["status"] != "ok"]
    if failed:
        merged["failed_rounds"] = failed
    return merged


def _speedups(rows: list[dict]) -> None:
    """``speedup_vs_fp32`` of each row: the p50 of the fp32 file in the same folder (the same
    conversion), on the same backend and threads; the only fp32 benchmarked when its folder
    has none; None when that is ambiguous (fp32 files of several models)."""
    baseline: dict[tuple, float] = {}
    for r in rows:
        if r["variant"] == FP32 and r["status"] == "ok":
            baseline[(str(Path(r["path"]).parent), r["backend"], r["threads"])] = r["study_latency_ms"]["p50"]
    for row in rows:
        base = baseline.get((str(Path(row["path"]).parent), row["backend"], row["threads"]))
        if base is None:
            others = [v for (_, backend, threads), v in baseline.items() if (backend, threads) == (row["backend"], row["threads"])]
            base = others[0] if len(others) == 1 else None
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
    result = envelope.envelope(RESULT_FORMAT)  # the load average before any work
    from ich_edge.runtime.model_file import ModelFile

    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise ModelError(f"{path} does not exist; pass .tflite files written by `ich-edge convert`")
    # One read per file; a damaged or foreign file stops here, before minutes of measuring.
    files = [ModelFile.open(path) for path in paths]
    series_list = None
    if data is not None:
        from ich_edge.ingest.cache import Cache

        series_list = Cache.open(data).series()
    models, grid = [], []
    for path, model_file in zip(paths, files):
        variant = str(model_file.description.get("precision", path.stem))
        models.append({
            "file": path.name,
            "path": str(path),
            "variant": variant,
            "size_mb": model_file.size_bytes / 1e6,
            "sha256": model_file.sha256,  # joins parity reports by content
            "macs": study_macs(model_file.data, model_file.description, config.study_slices),
            "_file": model_file,
        })
        for backend in config.backends:
            for threads in config.threads if backend != "gpu" else (None,):
                grid.append({"file": path.name, "path": path, "variant": variant, "backend": backend, "threads": threads})
    results: list[list[dict]] = [[] for _ in grid]
    for round_index in range(config.rounds):
        for cell, found in zip(grid, results):
            if found and found[0]["status"] == "unavailable":
                continue  # an unavailable backend stays unavailable; ask once
            found.append(run_configuration(cell["path"], cell["backend"], cell["threads"] or 1, config))
            if progress is not None:
                progress(
                    f"round {round_index + 1}/{config.rounds} {cell['file']} {cell['backend']} "
                    f"threads={cell['threads'] or '-'}: {found[-1]['status']}"
                )
    rows = [{**cell, "path": str(cell["path"]), **merge_rounds(found)} for cell, found in zip(grid, results)]
    for entry in models:
        model_file = entry.pop("_file")
        if series_list is not None:
            # After the timings, so accuracy work never overlaps a timed run.
            entry["study_auc"] = study_auc(model_file, series_list, max(config.threads))
    _speedups(rows)
    result.update(config=config.to_dict(), data=None if data is None else str(data), models=models, rows=rows)
    return envelope.finish(result)


def failed_rows(result: dict) -> list[str]:
    """One line per requested row that failed to measure (all or some of its rounds).

    ``unavailable`` rows (no GPU, an accelerator LiteRT cannot create) are not failures.
    """
    lines = []
    for row in result["rows"]:
        threads = row.get("threads") or "-"
        where = f"{row['file']} {row['backend']} threads={threads}"
        if row["status"] == "failed":
            lines.append(f"{where}: {row.get('reason', 'failed')}")
        elif row["status"] == "ok" and row.get("failed_rounds"):
            lines.append(f"{where}: {len(row['failed_rounds'])} of {row['rounds']} rounds failed ({row['failed_rounds'][0]})")
    return lines


def result_file_name(result: dict, prefix: str = "bench") -> str:
    """``<prefix>_<UTC timestamp>_<host>.json``: :func:`ich_edge.runtime.bench.envelope.result_file_name`."""
    return envelope.result_file_name(result, prefix)
