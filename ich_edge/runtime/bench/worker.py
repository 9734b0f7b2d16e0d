"""One ``ich-edge bench`` configuration, measured in the process it runs in.

``python -m ich_edge.runtime.bench.worker ARGS_JSON OUT_JSON`` is how
:func:`ich_edge.runtime.bench.runner.run_configuration` starts it: a fresh process per
configuration, so peak memory is that configuration's own. Runtime tier (no TensorFlow).
See :mod:`ich_edge.runtime.bench.runner` for what each field means.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ich_edge.errors import ConfigError, IchEdgeError


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


def _open(path: str, backend: str, threads: int):
    """The study model of ``backend``, built from one read of ``path`` (:class:`ModelFile`)."""
    from ich_edge.runtime.bench.gpu import GpuEncoderStudyModel
    from ich_edge.runtime.compiled import CompiledRuntimeStudyModel
    from ich_edge.runtime.model_file import ModelFile
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    model_file = ModelFile.open(path)
    if backend == "gpu":
        return CompiledRuntimeStudyModel(model_file, num_threads=threads, accelerator="gpu")
    if backend == "compiled":
        return CompiledRuntimeStudyModel(model_file, num_threads=threads, accelerator="cpu")
    if backend == "gpu+cpu":
        return GpuEncoderStudyModel(model_file, num_threads=threads)
    # timing_only: bench may time a stateful file (benchmarks/stateless_head.py times the old fused form)
    return TFLiteStudyModel(model_file, num_threads=threads, use_xnnpack=backend in XNNPACK_BACKENDS, timing_only=True)


def _coverage(backend: str, threads: int, model) -> dict:
    """Which nodes ``backend`` took, from the bytes the model was built from."""
    from ich_edge.runtime import coverage

    data = model.file.data
    try:
        if backend in XNNPACK_BACKENDS:
            per_signature = coverage.xnnpack_coverage(data, num_threads=threads)
        elif backend == "reference":
            per_signature = coverage.builtin_coverage(data)
        elif backend == "gpu+cpu":
            encode = coverage.builtin_coverage(data)["encode"]
            classify = coverage.xnnpack_coverage(data, num_threads=threads)["classify"]
            found = {"total_nodes": encode.total_nodes + classify.total_nodes, "signatures": {"classify": classify.to_dict()}}
            if model.accelerated.fully_accelerated:  # otherwise LiteRT does not say how many nodes the GPU took
                found["delegated_nodes"] = encode.total_nodes + classify.delegated_nodes
            else:
                found["fully_accelerated"] = False
            return found
        else:
            total = sum(c.total_nodes for c in coverage.builtin_coverage(data).values())
            return {"total_nodes": total, "fully_accelerated": bool(model.fully_accelerated), "signatures": {}}
    except IchEdgeError as err:
        return {"error": str(err)}
    return {
        "total_nodes": sum(c.total_nodes for c in per_signature.values()),
        "delegated_nodes": sum(c.delegated_nodes for c in per_signature.values()),
        "signatures": {key: c.to_dict() for key, c in per_signature.items()},
    }


#: Backends that run the Interpreter with XNNPACK; ``xnnpack-no-amx`` first keeps AMX from it (:mod:`ich_edge.runtime.amx`).
XNNPACK_BACKENDS = ("xnnpack", "xnnpack-no-amx")


def _deny_amx_or_reason() -> str | None:
    """For ``xnnpack-no-amx``: keep AMX from this process; the reason the row is unavailable instead, if any."""
    from ich_edge.runtime import amx
    from ich_edge.runtime.bench.sysinfo import cpu_features

    reason = amx.supported()
    if reason:
        return reason
    if "amx_int8" not in cpu_features():
        return "this CPU has no AMX: its xnnpack row runs the same int8 kernels"
    amx.deny_amx()
    return None


def _amx_refused() -> bool:
    """Whether the kernel now refuses AMX to this process (asked after the timing, as XNNPACK asked before it)."""
    import errno

    from ich_edge.runtime.amx import amx_request_errno

    return amx_request_errno() == errno.EPERM


#: Backends that run on LiteRT's CompiledModel API (importing it costs more than opening a model).
COMPILED_BACKENDS = ("compiled", "gpu", "gpu+cpu")


def _import_runtime(backend: str) -> None:
    """Import LiteRT's Python modules for ``backend`` (once per process; timed as ``import_ms``)."""
    from ich_edge.runtime.litert_compiled import import_litert
    from ich_edge.runtime.interpreter import interpreter_module

    interpreter_module()
    if backend in COMPILED_BACKENDS:
        import_litert()


def measure(path: str, backend: str, threads: int, runs: int, warmup: int, study_slices: int, seed: int) -> dict:
    """Measure one configuration in this process (see the module docstring for the fields).

    Call it in a fresh process (as :func:`run_configuration` does) for a meaningful peak RSS.
    """
    from ich_edge.runtime.litert_compiled import AcceleratorUnavailable
    from ich_edge.runtime.bench.sysinfo import current_rss_mb, peak_rss_mb

    if backend == "xnnpack-no-amx" and (reason := _deny_amx_or_reason()):
        return {"status": "unavailable", "reason": reason}
    start = time.perf_counter_ns()
    try:
        _import_runtime(backend)
        import_ms = (time.perf_counter_ns() - start) / 1e6
        rss_before = current_rss_mb()
        start = time.perf_counter_ns()
        model = _open(path, backend, threads)
    except AcceleratorUnavailable as err:
        return {"status": "unavailable", "reason": str(err)}
    init_ms = (time.perf_counter_ns() - start) / 1e6
    size = int(model.input_size_px)
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
    refused = {"amx_refused": _amx_refused()} if backend == "xnnpack-no-amx" else {}
    return {
        **refused,
        "status": "ok",
        "import_ms": import_ms,
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "slice_latency_ms": latency_stats(slice_ms),
        "study_latency_ms": latency_stats(study_ms),
        "study_cpu_ms": study_cpu_ms,
        "stage_latency_ms": {"encode": latency_stats(encode_ms), "classify": latency_stats(classify_ms)},
        "study_windows": int(len(windows)),
        "samples_ms": {"slice": slice_ms, "study": study_ms, "encode": encode_ms, "classify": classify_ms},
        "rss_before_model_mb": rss_before,
        "peak_rss_mb": peak,
        "nodes": _coverage(backend, threads, model),
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


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m ich_edge.runtime.bench.worker ARGS_JSON OUT_JSON (use `ich-edge bench`)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(_worker_main(sys.argv[1:]))
