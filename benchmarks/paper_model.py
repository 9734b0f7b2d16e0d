"""The seed paper's CNN-LSTM beside ich-edge's default model: size, parity and latency per precision.

Pipeline (each step skipped when its output exists in --work, so a rerun only benches):

1. ``examples/paper_model.py``: synth data, a 64 px cache, the paper model trained until its study AUC
   "any" on held-out training studies reaches ``--target-auc`` (or ``--paper-epochs``), saved as .h5;
2. ``ich-edge import`` -> ``qat`` -> ``convert --precision all`` -> ``parity`` on ``--test-studies``
   held-out studies (conversion parity against the model each file was converted from,
   deployment parity against the .h5 itself);
3. the default model on the same cache: ``ich-edge train`` -> ``qat`` -> ``convert --precision all`` -> ``parity``;
4. ``ich-edge bench`` of both folders: XNNPACK, 2 threads, every precision, ``--rounds`` rounds
   (the files take turns, so a load change on the machine hits every file alike).

Each model is also converted the other way round (``--projection never`` for the paper model, whose
``auto`` split moves the LSTM's input projection into ``encode``; ``always`` for the default model),
fp32 and qat-int8, and benched in the same run (``forms``).

Writes ``benchmarks/results/paper_model_<UTC>_<host>.json`` with a row per model and precision
(size, parity pass and the numbers behind it, slice and study latency) and each model's
qat-int8 / fp32 latency ratio of the medians (goal: qat-int8 at most 0.4x fp32). Usage::

    python benchmarks/paper_model.py --work /tmp/paper [--default-epochs 3] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT))  # the ich_edge of this checkout
from ich_edge.precisions import FP32, QAT_INT8  # noqa: E402


def _cli(args: list[str], allowed: tuple[int, ...] = (0,)) -> int:
    """Run one ``ich-edge`` verb in this process; stop the benchmark on an unexpected exit code."""
    from ich_edge.cli import main

    print("$ ich-edge " + " ".join(args), flush=True)
    code = main(args)
    print(f"  -> exit {code}", flush=True)
    if code not in allowed:
        raise SystemExit(f"ich-edge {args[0]} failed with exit code {code}; see above")
    return code


#: The other form of each model, converted too (fp32 and qat-int8 only) and benched in the same run:
#: the paper model projects under ``auto`` (28,800 features -> 128 gate inputs), the default does not.
OTHER_FORM = {"paper": "never", "default": "always"}


def _pipeline(name: str, run: Path, work: Path, cache: Path, test_cache: Path, qat_epochs: int, keep_float: str) -> Path:
    """qat, convert --precision all and parity (both questions, one report) of RUN_DIR ``run``;
    returns the .tflite folder. ``keep_float`` is passed to convert (``none``: no float search and no
    layer report, which judge candidate files on every training study: most of the run's time)."""
    qat_dir, tfl = work / f"{name}_qat", work / f"{name}_tflite"
    search = ["--keep-float", keep_float] + (["--no-layer-report"] if keep_float == "none" else [])
    if not (qat_dir / "model.keras").exists():
        _cli(["qat", "--model", str(run), "--data", str(cache), "--out", str(qat_dir), "--epochs", str(qat_epochs)])
    if not (tfl / "cnn_lstm_qat-int8.tflite").exists():
        _cli(["convert", "--model", str(run), "--model", str(qat_dir), "--precision", "all", "--data", str(cache),
              "--out", str(tfl), "--force", *search])
    other = work / f"{name}_tflite_{OTHER_FORM[name]}"
    if not (other / "cnn_lstm_qat-int8.tflite").exists():  # the same model with encode ending the other way
        _cli(["convert", "--model", str(run), "--model", str(qat_dir), "--precision", f"{FP32},{QAT_INT8}", "--data",
              str(cache), "--out", str(other), "--force", "--projection", OTHER_FORM[name], *search])
    if not (tfl / "parity" / "report.json").exists():
        files = [arg for p in sorted(tfl.glob("cnn_lstm_*.tflite")) for arg in ("--model", str(p))]
        # exit 1 (a gate failed) and 4 (too few studies to judge) still write the report
        _cli(["parity", "--reference", str(run), "--converted-from", str(qat_dir), *files, "--test", str(test_cache),
              "--out", str(tfl / "parity"), "--force", "--bootstrap", "200"], allowed=(0, 1, 4))
    return tfl


def _parity_rows(tfl: Path) -> dict:
    """Per precision: both parity verdicts and the numbers behind them."""
    report = json.loads((tfl / "parity" / "report.json").read_text())
    rows = {}
    for model in report["models"]:
        row = {"verdict": model["verdict"], "passed": model["passed"], "failures": model["failures"],
               "reference": report["reference"].get("original_model") or report["reference"]["path"]}
        for question in ("conversion", "deployment"):
            answer = model[question]
            study = answer["study"]["labels"]
            deltas = [v["auc_delta"] for v in study.values() if v.get("auc_delta") is not None]
            row[question] = {"verdict": answer["verdict"], "reference": answer["reference"],
                             "max_abs_diff": max(v["max_abs_diff"] for v in answer["slice"]["labels"].values()),
                             "worst_study_auc_delta": min(deltas) if deltas else None,
                             "min_study_agreement": min(v["agreement"] for v in study.values())}
        rows[model["precision"]] = row
    return rows


def _form_rows(rows: list, tfl: Path) -> tuple[str, dict]:
    """One form (what the files of ``tfl`` give classify per slice, from their description: "slice features"
    or "projected") and its fp32 and qat-int8: study and stage p50 (ms), values per slice, qat-int8 / fp32."""
    features = json.loads((tfl / f"cnn_lstm_{FP32}.tflite.json").read_text())["sequence"]["features"]
    out = {"values_per_slice": features["dim"]}
    for row in rows:
        path = Path(row["path"])
        if path.parent == tfl and path.stem in (f"cnn_lstm_{FP32}", f"cnn_lstm_{QAT_INT8}"):
            precision = path.stem.replace("cnn_lstm_", "")
            out[f"{precision}_study_ms"] = row["study_latency_ms"]["p50"]
            for stage, stats in (row.get("stage_latency_ms") or {}).items():
                out[f"{precision}_{stage}_ms"] = stats["p50"]
    if f"{FP32}_study_ms" in out and f"{QAT_INT8}_study_ms" in out:
        out["qat_int8_over_fp32"] = out[f"{QAT_INT8}_study_ms"] / out[f"{FP32}_study_ms"]
    return features["kind"], out


def _reference_auc(tfl: Path) -> dict:
    """Study AUC per label of the model every file is judged against (deployment reference), on the test studies."""
    report = json.loads((tfl / "parity" / "report.json").read_text())
    fp32 = next(m for m in report["models"] if m["precision"] == FP32)
    labels = fp32["deployment"]["study"]["labels"]
    return {label: None if v.get("auc") is None else round(v["auc"] - v["auc_delta"], 4) for label, v in labels.items()}


def _model_entry(rows: list, tfl: Path, other: Path) -> dict:
    """One model's section of the result: per precision size, parity and latency from the bench rows of
    ``tfl``, the qat-int8 / fp32 ratios, the test AUC of its reference, and both forms (``tfl``, ``other``)."""
    parity = _parity_rows(tfl)
    entry = {"folder": str(tfl), "precisions": {}}
    for row in rows:
        path = Path(row["path"])
        if path.parent != tfl:
            continue
        precision = path.stem.replace("cnn_lstm_", "")
        entry["precisions"][precision] = {
            "size_bytes": path.stat().st_size,
            "parity": parity.get(precision),
            "slice_latency_ms": row["slice_latency_ms"],
            "study_latency_ms": row["study_latency_ms"],
            "stage_latency_ms": row.get("stage_latency_ms"),
        }
    p = entry["precisions"]
    if FP32 in p and QAT_INT8 in p:
        for stat in ("study", "slice"):
            key = f"{stat}_latency_ms"
            entry[f"qat_int8_over_fp32_{stat}_latency"] = p[QAT_INT8][key]["p50"] / p[FP32][key]["p50"]
    entry["test_study_auc"] = _reference_auc(tfl)
    entry["forms"] = dict(_form_rows(rows, folder) for folder in (tfl, other))
    return entry


def _print_summary(result: dict) -> None:
    for name, entry in result["models"].items():
        for precision, row in entry["precisions"].items():
            par = row["parity"] or {}
            study, slice_ = row["study_latency_ms"], row["slice_latency_ms"]
            conv = (par.get("conversion") or {})
            print(f"{name:8} {precision:9} {row['size_bytes'] / 1024:9.1f} KiB  parity {par.get('verdict')} "
                  f"(conversion {conv.get('verdict')}, max|dp| {conv.get('max_abs_diff')})  study p50 {study['p50']:.2f} ms (p90 {study['p90']:.2f})  "
                  f"slice p50 {slice_['p50']:.3f} ms")
        print(f"{name}: qat-int8 / fp32 study latency (p50) = {entry.get('qat_int8_over_fp32_study_latency')}; "
              f"test study AUC any {entry['test_study_auc'].get('any')}")
        for form, row in entry["forms"].items():
            print(f"{name:8} {form:15} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--studies", type=int, default=1500, help="training studies (synth seed 0)")
    parser.add_argument("--test-studies", type=int, default=100, help="held-out studies for parity (synth seed 2)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--paper-epochs", type=int, default=30, help="at most this many epochs for the paper model")
    parser.add_argument("--target-auc", type=float, default=0.90,
                        help="stop training the paper model once its validation study AUC any reaches this")
    parser.add_argument("--default-epochs", type=int, default=3)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--keep-float", default="auto", help="convert's --keep-float (none: no search, no layer report)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    from paper_model import make_data, train_paper_model

    from ich_edge.runtime.bench.envelope import envelope, write_result

    head = envelope("ich-edge-paper-model/1", benchmark="paper_model")  # the load average before the work
    t0 = time.monotonic()
    work = args.work
    cache = make_data(work, args.studies, args.size)
    test_cache = make_data(work / "test", args.test_studies, args.size, seed=2)
    h5 = work / "paper_model.h5"
    trained_json = work / "paper_training.json"
    if not h5.exists():
        trained = train_paper_model(cache, h5, args.paper_epochs, size_px=args.size, target_auc=args.target_auc)
        trained_json.write_text(json.dumps(trained, indent=1))
        print(trained, flush=True)
    paper_run, default_run = work / "paper_run", work / "default_run"
    if not (paper_run / "model.keras").exists():
        _cli(["import", "--model", str(h5), "--out", str(paper_run), "--data", str(cache), "--force"])
    if not (default_run / "model.keras").exists():
        _cli(["train", "--data", str(cache), "--out", str(default_run), "--epochs", str(args.default_epochs),
              "--window-slices", "8", "--stride-slices", "4"])
    folders = {name: _pipeline(name, run, work, cache, test_cache, args.qat_epochs, args.keep_float)
               for name, run in (("paper", paper_run), ("default", default_run))}
    others = {name: work / f"{name}_tflite_{OTHER_FORM[name]}" for name in folders}
    files = [str(p) for tfl in [*folders.values(), *others.values()] for p in sorted(tfl.glob("cnn_lstm_*.tflite"))]
    bench_json = work / "bench.json"
    _cli(["bench", *[a for f in files for a in ("--model", f)], "--backend", "xnnpack", "--threads", "2", "--runs",
          str(args.runs), "--rounds", str(args.rounds), "--out", str(bench_json), "--out", str(work), "--force"])
    bench = json.loads(bench_json.read_text())
    result = {**head, "python": platform.python_version(),
              "settings": vars(args) | {"work": str(work), "results_dir": str(args.results_dir)},
              "bench_file": str(bench_json), "models": {},
              "paper_training": json.loads(trained_json.read_text()) if trained_json.exists() else None}
    rows = [r for r in bench["rows"] if r.get("status") == "ok"]
    for name, tfl in folders.items():
        result["models"][name] = _model_entry(rows, tfl, others[name])
    result["seconds"] = time.monotonic() - t0
    print(f"wrote {write_result(result, 'paper_model', args.results_dir, named={work: '<work>'})}")
    _print_summary(result)

if __name__ == "__main__":
    main()
