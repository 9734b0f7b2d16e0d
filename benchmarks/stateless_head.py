"""Stateless (unrolled) ``classify`` against the old fused, stateful LSTM: size and latency, one run.

``ich-edge convert`` writes ``classify`` stateless (:mod:`ich_edge.training.stateless`):
the recurrent head unrolled over the window, no variable tensors, so LiteRT's
CompiledModel, GPU accelerators and LiteRT.js run the file. The fused
UNIDIRECTIONAL_SEQUENCE_LSTM it replaces was smaller but kept its state in variable
tensors. This script converts the same RUN_DIR (and QAT_DIR) both ways in every precision
(the fused files go to a scratch folder only: convert refuses to write them) and times all
of them in one interleaved ``ich-edge bench`` run, so the ratios compare like with like:

* file size, and ``classify`` weight bytes from the op summary;
* ``classify`` stage latency (all windows of a 32-slice study) and whole-study latency,
  p50 over ``--runs`` x ``--rounds`` (XNNPACK, ``--threads``);
* whether each file has variable tensors, and whether CompiledModel (CPU) loads it.

    python benchmarks/stateless_head.py demo_out/run demo_out/qat --data demo_out/cache --rounds 3

Writes ``benchmarks/results/stateless_head_<UTC time>_<host>.json``. Needs TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def fused_files(run, recipes, data, out: Path, log) -> dict[str, Path]:
    """The old form: the Keras head as it is (fused LSTM, cells unclipped), in each recipe."""
    from converters import ConvertOptions
    from converters.calibration import DEFAULT_CALIBRATION_WINDOWS, calibration_set, representative_dataset
    from ich_edge.ingest.cache import Cache
    from ich_edge.runtime.description import op_summary
    from converters import graph
    from converters.convert import write_model
    from converters.describe import describe_model

    series = Cache.open(data).load_all()
    calibration = calibration_set(run.encoder, series, run.sequence_config, DEFAULT_CALIBRATION_WINDOWS, 0)
    written = {}
    with tempfile.TemporaryDirectory() as scratch:
        saved = graph.save_deployable(run.encoder, run.head, run.sequence_config.window_slices,
                                      Path(scratch) / "saved", stateless=False)
        for recipe in recipes:
            dataset = representative_dataset(calibration) if recipe.needs_calibration else None
            options = ConvertOptions(io="float", representative_dataset=dataset)
            data_bytes = graph.unclip_lstm_cells(graph.run_converter(saved, recipe, options))
            summary = op_summary(data_bytes)
            description = describe_model(run, recipe, options, data_bytes, summary, None)
            description["sequence"]["state"] = "FUSED, STATEFUL (benchmark only): reset variable tensors per window"
            written[recipe.name] = write_model(out / recipe.file_name, data_bytes, description, force=True)
            log(f"fused {recipe.name}: {written[recipe.name].stat().st_size} bytes")
    return written


def compiled_loads(path: Path) -> str:
    """``"yes"`` or LiteRT's reason: whether CompiledModel (CPU accelerator) opens the file."""
    from ich_edge.errors import IchEdgeError
    from ich_edge.runtime.compiled import CompiledRuntimeStudyModel

    try:
        CompiledRuntimeStudyModel(path, num_threads=1, accelerator="cpu")
    except IchEdgeError as err:
        return str(err)[:200]
    return "yes"


def summarize(result: dict, files: dict[tuple[str, str], Path]) -> list[dict]:
    """One row per precision: both forms' size, classify and study p50, and stateless/fused ratios."""
    from ich_edge.runtime.description import op_summary

    by_path = {}
    for row in result["rows"]:
        if row.get("status") == "ok":
            by_path[row["path"]] = row
    table = []
    for precision in sorted({p for _, p in files}):
        entry = {"precision": precision}
        for form in ("stateless", "fused"):
            path = files.get((form, precision))
            if path is None:
                continue
            row = by_path.get(str(path), {})
            summary = op_summary(path)
            entry[form] = {
                "size_bytes": path.stat().st_size,
                "classify_weight_bytes": sum(summary["classify"]["weight_bytes"].values()),
                "classify_ops": sum(op["count"] for op in summary["classify"]["ops"].values()),
                "variable_tensors": sum(info["variable_tensors"] for info in summary.values()),
                "classify_ms_p50": ((row.get("stage_latency_ms") or {}).get("classify") or {}).get("p50"),
                "study_ms_p50": (row.get("study_latency_ms") or {}).get("p50"),
                "compiled_model_loads": compiled_loads(path),
            }
        if "stateless" in entry and "fused" in entry:
            s, f = entry["stateless"], entry["fused"]
            entry["ratio_stateless_to_fused"] = {
                key: (s[key] / f[key] if s[key] and f[key] else None)
                for key in ("size_bytes", "classify_ms_p50", "study_ms_p50")
            }
        table.append(entry)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="a float RUN_DIR and optionally a QAT_DIR")
    parser.add_argument("--data", type=Path, required=True, help="the training cache (calibration)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from converters import select_recipes
    from ich_edge.runtime.bench.runner import BenchConfig, benchmark
    from ich_edge.runtime.bench.envelope import write_result
    from ich_edge.runtime.bench.report import format_table
    from converters.convert import ConvertConfig, convert_runs
    from ich_edge.training.run_dir import RunDir

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    files: dict[tuple[str, str], Path] = {}
    with tempfile.TemporaryDirectory(prefix="stateless_head_") as scratch:
        scratch = Path(scratch)
        run_dirs = [RunDir.open(folder) for folder in args.run_dirs]  # each folder read once
        for written in convert_runs(run_dirs, args.data, scratch / "stateless", ConvertConfig(), log=lambda _: None):
            files[("stateless", written["precision"])] = Path(written["path"])
        for run_dir in run_dirs:
            quantized = run_dir.quantized
            recipes = select_recipes(("all",), not quantized, quantized)
            recipes = [r for r in recipes if r.needs_qat == quantized]
            run = run_dir.load_keras()
            for name, path in fused_files(run, recipes, args.data, scratch / "fused", log).items():
                files[("fused", name)] = path
        config = BenchConfig(threads=(args.threads,), backends=("xnnpack",), runs=args.runs, rounds=args.rounds)
        result = benchmark(list(files.values()), config, progress=log)
        print(format_table(result))
        result["stateless_vs_fused"] = summarize(result, files)
        result["files"] = {f"{form}/{precision}": str(path) for (form, precision), path in files.items()}
        print(f"wrote {write_result(result, 'stateless_head', args.results_dir, named={scratch: '<scratch>'})}")
    for entry in result["stateless_vs_fused"]:
        ratio = entry.get("ratio_stateless_to_fused") or {}
        print(f"{entry['precision']:9s} size {entry['stateless']['size_bytes']:>7} vs {entry['fused']['size_bytes']:>7} "
              f"({ratio.get('size_bytes') or 0:.2f}x)  classify p50 {entry['stateless']['classify_ms_p50']} vs "
              f"{entry['fused']['classify_ms_p50']} ms  study p50 {entry['stateless']['study_ms_p50']} vs "
              f"{entry['fused']['study_ms_p50']} ms  CompiledModel: {entry['stateless']['compiled_model_loads']} / "
              f"{entry['fused']['compiled_model_loads'][:60]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
