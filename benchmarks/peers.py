"""TFLite against its peers on the same model and the same study, in one run, as ratios.

Peers, all at the same thread count (2 by default), all running a whole study the way the
device does (encode every slice once, classify the windows of the sequence rule, stitch):

* ``tensorflow``: the Keras model of the run itself, encoder and head as ``tf.function``
  graphs (the study's slices in one batch, its windows in one batch);
* ``tflite <precision>``: each ``.tflite`` on XNNPACK through
  :class:`ich_edge.runtime.tflite_model.TFLiteStudyModel` (what ``ich-edge predict`` runs);
* ``onnxruntime fp32``: encoder and head exported with tf2onnx (opset 17), CPU provider;
* ``onnxruntime int8``: the fp32 ONNX files quantized by ONNX Runtime (encoder: static QDQ,
  per-channel int8, calibrated on the study's slices; head: dynamic int8 weights, since its
  LSTM has no static int8 kernel);
* each ONNX Runtime variant twice: with its default thread spinning and with
  ``session.intra_op.allow_spinning=0`` ("no-spin"), which is much faster on a CPU shared
  with other processes. "onnxruntime best" is the fastest of these.

Every peer runs in its own fresh process, round-robin over ``--rounds`` rounds, so that
other load on a shared machine hits all peers alike; a peer's latency is the median over
rounds of its per-round median. All numbers are reported relative to ``tflite fp32`` in the
same run; absolute milliseconds are kept in the JSON. Each peer's study probabilities are
compared with the TensorFlow peer's (max |dp|), so a fast peer that computes something else
shows up.

    python benchmarks/peers.py --reference RUN_DIR --tflite cnn_lstm_fp32.tflite \
        --tflite cnn_lstm_qat-int8.tflite [--data CACHE] [--threads 2] [--rounds 3]

Needs the ``train`` and ``peer`` extras (TensorFlow, tf2onnx, onnxruntime).
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


# --- workers (one peer, one fresh process) --------------------------------------------------


def _timed(fn, runs: int, warmup: int) -> tuple[list[float], float]:
    for _ in range(warmup):
        fn()
    wall, cpu_start = [], time.process_time()
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        wall.append((time.perf_counter_ns() - start) / 1e6)
    return wall, (time.process_time() - cpu_start) * 1e3 / runs


def _study_runner(spec: dict, study: np.ndarray):
    """``run() -> probabilities (N, 6)`` for one peer, set up in this process."""
    from ich_edge.sequence import SequenceConfig, gather_windows, stitch

    sequence = SequenceConfig.from_dict(spec["sequence"])
    threads = spec["threads"]
    if spec["kind"] == "tflite":
        from ich_edge.runtime.tflite_model import TFLiteStudyModel

        model = TFLiteStudyModel(spec["path"], num_threads=threads)
        return lambda: model.predict_series(study)
    unit = study.astype(np.float32) / np.float32(255.0)
    if spec["kind"] == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from ich_edge.training.keras import tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from ich_edge.training.qat import load_any_run

        run = load_any_run(spec["path"])
        encode = tf.function(lambda x: run.encoder(x, training=False), reduce_retracing=True)
        classify = tf.function(lambda x: run.head(x, training=False), reduce_retracing=True)

        def run_tf():
            features = encode(unit).numpy()
            return stitch(classify(gather_windows(features, sequence)).numpy(), len(study), sequence)

        return run_tf
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ONNX Runtime's intra-op threads spin while waiting by default; on a CPU shared with other
    # processes that costs more than it saves, so each int8/fp32 model also runs with it off.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spec.get("spin", True) else "0")
    encode = ort.InferenceSession(spec["encode"], options, providers=["CPUExecutionProvider"])
    classify = ort.InferenceSession(spec["classify"], options, providers=["CPUExecutionProvider"])
    enc_in, cls_in = encode.get_inputs()[0].name, classify.get_inputs()[0].name

    def run_ort():
        features = encode.run(None, {enc_in: unit})[0]
        windows = gather_windows(features, sequence)
        return stitch(classify.run(None, {cls_in: windows})[0], len(study), sequence)

    return run_ort


def _worker(spec_json: str, out_path: str) -> None:
    spec = json.loads(spec_json)
    study = np.load(spec["study"])
    run = _study_runner(spec, study)
    probs = run()
    wall, cpu = _timed(run, spec["runs"], spec["warmup"])
    Path(out_path).write_text(json.dumps({
        "p50_ms": float(np.median(wall)),
        "mean_ms": float(np.mean(wall)),
        "min_ms": float(np.min(wall)),
        "cpu_ms_per_study": cpu,
        "probabilities": np.asarray(probs, np.float64).tolist(),
    }))


def run_peer(spec: dict) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.json"
        done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec), str(out)],
                              capture_output=True, text=True, check=False)
        if not out.is_file():
            tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
            return {"status": "failed", "reason": " | ".join(tail)}
        return {"status": "ok", **json.loads(out.read_text())}


# --- setup in the parent ----------------------------------------------------------------------


def study_images(run, data: Path | None, slices: int, seed: int) -> np.ndarray:
    """The study every peer runs: the first series of ``data`` cut/tiled to ``slices``, else noise."""
    size = run.preprocess_config.input_size_px
    if data is None:
        return np.random.default_rng(seed).integers(0, 256, (slices, size, size, 3), dtype=np.uint8)
    from ich_edge.ingest.cache import Cache

    series = max(Cache.open(data).series(), key=lambda s: s.num_slices)
    index = np.arange(slices) % series.num_slices
    return np.ascontiguousarray(series.images[index])


def export_onnx(run, study: np.ndarray, folder: Path) -> dict:
    """tf2onnx export of encoder and head (fp32), and ONNX Runtime's int8 versions of them.

    Returns ``{"fp32": {...}, "int8": {...} or {"error": text}}``: a failed int8 route is
    reported, not hidden, and does not take the fp32 peer with it.
    """
    import tf2onnx

    from ich_edge.training.keras import tf

    size = run.preprocess_config.input_size_px
    window, features = run.sequence_config.window_slices, run.model_config.feature_dim
    paths = {"encode": folder / "encode_fp32.onnx", "classify": folder / "classify_fp32.onnx"}
    tf2onnx.convert.from_keras(run.encoder, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, "image")],
                               opset=17, output_path=str(paths["encode"]))
    tf2onnx.convert.from_keras(run.head, input_signature=[tf.TensorSpec([None, window, features], tf.float32, "features")],
                               opset=17, output_path=str(paths["classify"]))
    try:
        int8 = quantize_onnx(paths, study, folder)
    except Exception as err:  # ONNX Runtime's quantizer raises many kinds; the text is the finding
        int8 = {"error": f"{type(err).__name__}: {err}"}
    return {"fp32": {k: str(v) for k, v in paths.items()}, "int8": int8}


def quantize_onnx(paths: dict, study: np.ndarray, folder: Path) -> dict:
    """ONNX Runtime int8: static QDQ per-channel encoder (calibrated on the study), dynamic head."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    unit = study.astype(np.float32) / np.float32(255.0)

    class Slices(CalibrationDataReader):
        def __init__(self, session_input: str) -> None:
            self.items = iter([{session_input: unit[i : i + 4]} for i in range(0, len(unit), 4)])

        def get_next(self):
            return next(self.items, None)

    input_name = onnx.load(str(paths["encode"])).graph.input[0].name
    prepared = folder / "encode_prepared.onnx"
    quant_pre_process(str(paths["encode"]), str(prepared), skip_symbolic_shape=True)
    int8 = {"encode": folder / "encode_int8.onnx", "classify": folder / "classify_int8.onnx"}
    quantize_static(str(prepared), str(int8["encode"]), Slices(input_name), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    quantize_dynamic(str(paths["classify"]), str(int8["classify"]), weight_type=QuantType.QInt8)
    return {k: str(v) for k, v in int8.items()}


def format_table(result: dict) -> str:
    base = result["baseline"]
    lines = [
        f"peers on one {result['study_slices']}-slice study, {result['threads']} threads, {result['rounds']} rounds x "
        f"{result['runs']} runs ({result['machine']['cpu_model']}); relative to {base}",
        f"{'peer':<28} {'status':<8} {'x latency':>9} {'x CPU time':>10} {'max |dp| vs TF':>15}",
    ]
    for row in result["peers"]:
        if row["status"] != "ok":
            lines.append(f"{row['name']:<28} {row['status']:<8} {row.get('reason', '')}")
            continue
        diff = row["max_abs_diff_vs_tensorflow"]
        lines.append(
            f"{row['name']:<28} {'ok':<8} {row['latency_ratio']:>9.2f} {row['cpu_ratio']:>10.2f} "
            f"{'n/a' if diff is None else format(diff, '.2e'):>15}{' *' if row.get('note') else ''}"
        )
    best = result.get("onnxruntime_best")
    if best:
        lines.append(f"onnxruntime best variant: {best['name']} ({best['latency_ratio']:.2f}x)")
    lines.append("x latency: median study latency / that of the baseline (lower is faster).")
    if any(row.get("note") for row in result["peers"]):
        lines.append("* converted from another run than --reference (e.g. qat-int8 from the QAT_DIR): |dp| includes "
                     "the difference between the two runs' weights, not only the runtime's.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, type=Path, help="RUN_DIR or QAT_DIR the .tflite files came from")
    parser.add_argument("--tflite", action="append", type=Path, default=[], help="repeat; one must be fp32 (the baseline)")
    parser.add_argument("--data", type=Path, default=None, help="cache: run and calibrate on a real study")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--study-slices", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def _converted_from(source: dict, run_path: Path) -> bool:
    """True when a file's ``source_run`` is ``run_path``: by model.keras's sha256, or for files converted
    before the description held one, by the absolute path it recorded."""
    from ich_edge.training.run_dir import model_sha256

    if source.get("model_sha256"):
        return source["model_sha256"] == model_sha256(run_path)
    return not source.get("path") or Path(source["path"]).resolve() == run_path.resolve()


def peer_specs(args: argparse.Namespace, run, study: np.ndarray, folder: Path) -> tuple[list, dict, str | None]:
    """``(name, spec)`` of every peer, the .tflite peers converted from another run, and why ONNX failed (or None)."""
    from ich_edge.runtime.description import read_description

    specs = [("tensorflow", {"kind": "tensorflow", "path": str(args.reference)})]
    other_source = {}
    for path in args.tflite:
        description = read_description(path)
        name = f"tflite {description.get('precision', path.stem)}"
        specs.append((name, {"kind": "tflite", "path": str(path.resolve())}))
        source = description.get("source_run") or {}
        if not _converted_from(source, args.reference):
            other_source[name] = source.get("path")  # e.g. qat-int8 comes from the QAT_DIR, not the float run
    onnx_error = None
    try:
        onnx = export_onnx(run, study, folder)
        variants = {"fp32": onnx["fp32"]}
        if "error" in onnx["int8"]:
            onnx_error = f"int8 quantization: {onnx['int8']['error']}"
        else:
            variants["int8"] = onnx["int8"]
        for name, files in variants.items():
            specs.append((f"onnxruntime {name}", {"kind": "onnx", **files}))
            specs.append((f"onnxruntime {name} no-spin", {"kind": "onnx", "spin": False, **files}))
    except Exception as err:  # report the failed route instead of hiding the peer
        onnx_error = f"{type(err).__name__}: {err}"
    return specs, other_source, onnx_error


def measure_rounds(specs: list, common: dict, num_rounds: int) -> dict[str, list[dict]]:
    """Every peer in a fresh process, round-robin over ``num_rounds`` rounds: peer name -> per-round results."""
    rounds: dict[str, list[dict]] = {name: [] for name, _ in specs}
    for _ in range(num_rounds):
        for name, spec in specs:
            rounds[name].append(run_peer({**common, **spec}))
    return rounds


def summarize_peers(rounds: dict[str, list[dict]], onnx_error: str | None, other_source: dict) -> list[dict]:
    """One row per peer: median latency over rounds, ratios to ``tflite fp32``, max |dp| vs TensorFlow."""
    peers = []
    for name, results in rounds.items():
        ok = [r for r in results if r["status"] == "ok"]
        if not ok:
            peers.append({"name": name, "status": "failed", "reason": results[0].get("reason")})
            continue
        peers.append({
            "name": name,
            "status": "ok",
            "study_ms_p50": float(np.median([r["p50_ms"] for r in ok])),
            "study_ms_per_round": [r["p50_ms"] for r in ok],
            "cpu_ms_per_study": float(np.median([r["cpu_ms_per_study"] for r in ok])),
            "probabilities": np.asarray(ok[0]["probabilities"]),
        })
    if onnx_error:
        peers.append({"name": "onnxruntime", "status": "failed", "reason": onnx_error})
    base = next((p for p in peers if p["name"] == "tflite fp32" and p["status"] == "ok"), None)
    if base is None:
        raise SystemExit("no 'tflite fp32' result to compare with: pass the fp32 .tflite with --tflite")
    reference = next((p["probabilities"] for p in peers if p["name"] == "tensorflow" and p["status"] == "ok"), None)
    for peer in peers:
        if peer["status"] == "ok":
            peer["latency_ratio"] = peer["study_ms_p50"] / base["study_ms_p50"]
            peer["cpu_ratio"] = peer["cpu_ms_per_study"] / base["cpu_ms_per_study"]
            probs = peer.pop("probabilities")
            peer["max_abs_diff_vs_tensorflow"] = None if reference is None else float(np.abs(probs - reference).max())
            if peer["name"] in other_source:
                peer["source_run"] = other_source[peer["name"]]
                peer["note"] = "converted from another run than --reference: its |dp| includes that run's weights"
    return peers


def result_document(args: argparse.Namespace, peers: list[dict], head: dict) -> dict:
    """The result JSON (format ich-edge-peers/1) in ``head``, the envelope made before the measurements."""
    onnx_ok = [p for p in peers if p["name"].startswith("onnxruntime ") and p["status"] == "ok"]
    return {
        **head,
        "reference": str(args.reference),
        "study": "first/longest series of --data" if args.data else "uniform noise (seed 0)",
        "threads": args.threads, "runs": args.runs, "warmup": args.warmup, "rounds": args.rounds,
        "study_slices": args.study_slices,
        "baseline": "tflite fp32 (xnnpack)",
        "peers": peers,
        "onnxruntime_best": min(onnx_ok, key=lambda p: p["study_ms_p50"]) if onnx_ok else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure every peer, print the table, write the result JSON."""
    args = parse_args(argv)
    from ich_edge.runtime.bench.envelope import envelope, write_results
    from ich_edge.training.qat import load_any_run

    run = load_any_run(args.reference)
    head = envelope("ich-edge-peers/1")  # the load average before the measurements
    with tempfile.TemporaryDirectory(prefix="ich-edge-peers-") as folder:
        study = study_images(run, args.data, args.study_slices, seed=0)
        np.save(Path(folder) / "study.npy", study)
        common = {"threads": args.threads, "runs": args.runs, "warmup": args.warmup,
                  "sequence": run.sequence_config.to_dict(), "study": str(Path(folder) / "study.npy")}
        specs, other_source, onnx_error = peer_specs(args, run, study, Path(folder))
        rounds = measure_rounds(specs, common, args.rounds)
    result = result_document(args, summarize_peers(rounds, onnx_error, other_source), head)
    print(format_table(result))
    for path in write_results(result, "peers", args.results_dir, args.json):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
