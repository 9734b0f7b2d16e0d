"""How close does the model get to what this CPU can do? Achieved vs peak multiply-accumulates.

* **Model MACs per study**, counted from the ``.tflite`` graph (conv, depthwise conv, fully
  connected, LSTM shapes; :func:`ich_edge.runtime.coverage.signature_macs`): encode MACs x
  slices + classify MACs x windows of the sequence rule.
* **Peak**: tiny generated TFLite models that XNNPACK runs near its best, a large GEMM
  (FULLY_CONNECTED) and a 3x3 convolution, in fp32 and full-integer int8, timed on XNNPACK
  with the same thread count in fresh processes; plus numpy's fp32 matmul for comparison.
* **Achieved**: MACs per study / measured study latency (``ich-edge bench``'s worker, XNNPACK),
  per stage too (encode vs classify), as a fraction of the peak of the model's arithmetic
  (int8 for int8/qat-int8, fp32 otherwise).

    python benchmarks/machine_limit.py --model cnn_lstm_fp32.tflite --model cnn_lstm_qat-int8.tflite \
        --threads 2 --json out.json

Writes ``benchmarks/results/machine_limit_<UTC time>_<host>.json`` and prints a table.
Generating the probe models needs TensorFlow (the benchmark environment, not the device).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the ich_edge of this checkout
from ich_edge.precisions import INT8, QAT_INT8  # noqa: E402

#: (name, kind, shape): GEMM (M, K, N) and conv (H, W, C_in, C_out, kernel), batch 1.
PROBES = (
    ("gemm 256x1024x1024", "gemm", (256, 1024, 1024)),
    ("conv3x3 56x56x128->128", "conv", (56, 56, 128, 128, 3)),
)
INT8_PRECISIONS = (INT8, QAT_INT8)


def probe_macs(kind: str, shape: tuple) -> int:
    if kind == "gemm":
        m, k, n = shape
        return m * k * n
    h, w, cin, cout, kernel = shape
    return h * w * cin * cout * kernel * kernel


def build_probe(kind: str, shape: tuple, int8: bool, path: Path) -> Path:
    """Write a one-op TFLite model (fp32, or full-integer int8 with int8 I/O)."""
    from ich_edge.training.keras import keras, tf

    if kind == "gemm":
        m, k, n = shape
        inputs = keras.Input((k,), batch_size=m)
        outputs = keras.layers.Dense(n, use_bias=False)(inputs)
        sample_shape = (m, k)
    else:
        h, w, cin, cout, kernel = shape
        inputs = keras.Input((h, w, cin), batch_size=1)
        outputs = keras.layers.Conv2D(cout, kernel, padding="same", use_bias=False)(inputs)
        sample_shape = (1, h, w, cin)
    model = keras.Model(inputs, outputs)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.standard_normal(sample_shape).astype(np.float32)] for _ in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


def _probe_worker(path: str, threads: int, runs: int) -> None:
    from ich_edge.runtime.interpreter import make_interpreter

    interpreter = make_interpreter(path, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.dtype(detail["dtype"]).kind == "f":
        data = rng.standard_normal(detail["shape"]).astype(np.float32)
    else:
        data = rng.integers(-128, 128, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], data)
    for _ in range(3):
        interpreter.invoke()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    print(json.dumps({"p50_ms": float(np.median(samples)), "min_ms": float(np.min(samples))}))


def _numpy_worker(threads: int, runs: int) -> None:
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    for _ in range(3):
        a @ a
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        a @ a
        samples.append((time.perf_counter_ns() - start) / 1e6)
    print(json.dumps({"p50_ms": float(np.median(samples)), "min_ms": float(np.min(samples))}))


def _run_worker(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"probe worker failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_peaks(threads: int, runs: int) -> dict:
    """GMAC/s of each probe (fp32 and int8 on XNNPACK, numpy fp32), and the best per dtype."""
    peaks: dict = {"probes": [], "fp32": 0.0, "int8": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        for name, kind, shape in PROBES:
            macs = probe_macs(kind, shape)
            for dtype in ("fp32", "int8"):
                path = build_probe(kind, shape, dtype == "int8", Path(folder) / f"{kind}_{dtype}.tflite")
                timing = _run_worker(["--probe-worker", str(path), str(threads), str(runs)], threads)
                gmacs = macs / (timing["p50_ms"] / 1e3) / 1e9
                peaks["probes"].append({"probe": name, "dtype": dtype, "macs": macs, **timing, "gmac_per_s": gmacs})
                peaks[dtype] = max(peaks[dtype], gmacs)
    timing = _run_worker(["--numpy-worker", str(threads), str(runs)], threads)
    peaks["numpy_fp32_matmul_1024"] = {**timing, "gmac_per_s": 1024**3 / (timing["p50_ms"] / 1e3) / 1e9}
    return peaks


def measure_model(path: Path, threads: int, runs: int, warmup: int, study_slices: int, peaks: dict) -> dict:
    from ich_edge.runtime.bench.runner import BenchConfig, run_configuration, study_macs
    from ich_edge.runtime.description import read_description

    description = read_description(path)
    precision = str(description.get("precision"))
    macs = study_macs(path, description, study_slices)
    config = BenchConfig(threads=(threads,), backends=("xnnpack",), runs=runs, warmup=warmup, study_slices=study_slices)
    row = run_configuration(path, "xnnpack", threads, config)
    if row["status"] != "ok":
        return {"file": path.name, "precision": precision, "status": row["status"], "reason": row.get("reason")}
    dtype = "int8" if precision in INT8_PRECISIONS else "fp32"
    per_sig = macs["per_signature"]
    study_ms = row["study_latency_ms"]["p50"]
    encode_ms = row["stage_latency_ms"]["encode"]["p50"]
    classify_ms = row["stage_latency_ms"]["classify"]["p50"]
    encode_macs = per_sig["encode"]["macs"] * study_slices
    classify_macs = per_sig["classify"]["macs"] * row["study_windows"]
    achieved = macs["study"] / (study_ms / 1e3) / 1e9
    return {
        "file": path.name,
        "precision": precision,
        "status": "ok",
        "peak_dtype": dtype,
        "study_macs": macs["study"],
        "study_ms_p50": study_ms,
        "achieved_gmac_per_s": achieved,
        "fraction_of_peak": achieved / peaks[dtype],
        "encode": {"macs": encode_macs, "ms_p50": encode_ms, "gmac_per_s": encode_macs / (encode_ms / 1e3) / 1e9},
        "classify": {"macs": classify_macs, "ms_p50": classify_ms, "gmac_per_s": classify_macs / (classify_ms / 1e3) / 1e9},
        "macs_by_op": {key: value["macs_by_op"] for key, value in per_sig.items()},
        "nodes": row["nodes"],
    }


def format_table(result: dict) -> str:
    peaks = result["peaks"]
    lines = [f"machine limit, {result['threads']} thread(s), XNNPACK: {result['machine']['cpu_model']}"]
    for probe in peaks["probes"]:
        lines.append(f"  peak probe {probe['probe']:<26} {probe['dtype']:<5} {probe['gmac_per_s']:8.1f} GMAC/s")
    lines.append(f"  numpy fp32 matmul 1024^3             {peaks['numpy_fp32_matmul_1024']['gmac_per_s']:8.1f} GMAC/s")
    lines.append(f"  peak used: fp32 {peaks['fp32']:.1f} GMAC/s, int8 {peaks['int8']:.1f} GMAC/s")
    lines.append("")
    header = f"{'model':<28} {'MACs/study':>11} {'study ms':>9} {'GMAC/s':>8} {'of peak':>8} {'encode GMAC/s':>14} {'classify GMAC/s':>16}"
    lines += [header, "-" * len(header)]
    for row in result["models"]:
        if row["status"] != "ok":
            lines.append(f"{row['file']:<28} {row['status']}: {row.get('reason')}")
            continue
        lines.append(
            f"{row['file']:<28} {row['study_macs'] / 1e9:>10.3f}G {row['study_ms_p50']:>9.2f} "
            f"{row['achieved_gmac_per_s']:>8.1f} {100 * row['fraction_of_peak']:>7.1f}% "
            f"{row['encode']['gmac_per_s']:>14.1f} {row['classify']['gmac_per_s']:>16.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", type=Path, default=[], help=".tflite written by ich-edge convert (repeat)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--study-slices", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from ich_edge.runtime.bench.envelope import envelope, finish, write_results

    result = envelope("ich-edge-machine-limit/1")  # the load average before the measurements
    peaks = measure_peaks(args.threads, args.runs)
    models = [measure_model(p, args.threads, args.runs, args.warmup, args.study_slices, peaks) for p in args.model]
    result.update({"threads": args.threads, "study_slices": args.study_slices, "peaks": peaks, "models": models})
    finish(result)
    print(format_table(result))
    for path in write_results(result, "machine_limit", args.results_dir, args.json):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--probe-worker":
        _probe_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--numpy-worker":
        _numpy_worker(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(main())
