"""One QAT recipe on several trained seeds: does its qat-int8 file pass both parity questions?

For each ``SEED:RUN_DIR`` (float runs of ``ich-edge train --seed SEED`` on the demo's data, e.g.
the folders of ``benchmarks/seed_spread.py --ship``), runs what ``make demo`` runs for the
phone file, with the recipe's QAT epochs and float layers:

    ich-edge qat --model RUN_DIR --data TRAIN_CACHE --out WORK/qat_<tag> --epochs E --seed SEED
    ich-edge convert --model RUN_DIR --model WORK/qat_<tag> --precision qat-int8 [--keep-float K]
                     --data TRAIN_CACHE --out WORK/tflite_<tag>[_kf-K]
    ich-edge parity --reference RUN_DIR --converted-from WORK/qat_<tag> --model <file> --test TEST_CACHE
                    --out WORK/parity_<tag>[_kf-K]

(``<tag>`` = ``s<SEED>ep<E>``), skipping a step whose output exists (rerunnable), and records per
seed both verdicts, the failed gates, per label the study AUC change, its paired 95% interval and
decision agreement, what the float search kept, and the QAT report's validation AUCs. The gates
are ``docs/parity-gates.md``'s, unchanged.

    python benchmarks/qat_recipe.py --runs 0:demo_out/run,1:W/seed_1/run --epochs 6 --work W [--keep-float auto]

Writes ``benchmarks/results/qat_recipe_<UTC time>_<host>.json`` and prints one line per seed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the ich_edge of this checkout

from ich_edge.precisions import BY_NAME, QAT_INT8  # noqa: E402

QAT_FILE = BY_NAME[QAT_INT8].file_name

RESULTS = Path(__file__).resolve().parent / "results"
FORMAT = "ich-edge-qat-recipe/1"


def ich_edge(*args: str, allowed=(0,)) -> int:
    print("$ ich-edge " + " ".join(args), flush=True)
    code = subprocess.run([sys.executable, "-m", "ich_edge", *args]).returncode
    if code not in allowed:
        raise SystemExit(f"ich-edge {args[0]} exited {code}")
    return code


def folders(work: Path, seed: int, epochs: int, keep_float: str) -> tuple[Path, Path, Path]:
    """``(QAT_DIR, tflite folder, parity folder)`` of one seed under the recipe."""
    tag = f"s{seed}ep{epochs}"
    suffix = "" if keep_float == "auto" else "_kf-" + keep_float.replace("/", "-").replace(",", "+")
    return work / f"qat_{tag}", work / f"tflite_{tag}{suffix}", work / f"parity_{tag}{suffix}"


def run_seed(seed: int, run: Path, args) -> dict:
    """Run the recipe's steps for one seed (those not done yet) and read back what they give."""
    qat, tflite, parity = folders(args.work, seed, args.epochs, args.keep_float)
    if not (qat / "report.json").is_file():
        ich_edge("qat", "--model", str(run), "--data", str(args.train_cache), "--out", str(qat),
                 "--epochs", str(args.epochs), "--seed", str(seed))
    if not (tflite / QAT_FILE).is_file():
        ich_edge("convert", "--model", str(run), "--model", str(qat), "--precision", QAT_INT8,
                 "--keep-float", args.keep_float, "--data", str(args.train_cache), "--out", str(tflite))
    if not (parity / "report.json").is_file():
        ich_edge("parity", "--reference", str(run), "--converted-from", str(qat), "--model", str(tflite / QAT_FILE),
                 "--test", str(args.test_cache), "--out", str(parity), "--force", allowed=(0, 1, 4))
    return seed_row(seed, qat, tflite, parity)


def seed_row(seed: int, qat: Path, tflite: Path, parity: Path) -> dict:
    """Both verdicts, failures, per-label study numbers, the float search and the QAT validation AUCs of one seed."""
    (model,) = json.loads((parity / "report.json").read_text())["models"]
    layers = json.loads((tflite / (QAT_FILE + ".layers.json")).read_text())
    qat_report = json.loads((qat / "report.json").read_text())
    labels = {}
    for question in ("conversion", "deployment"):
        for label, entry in model[question]["study"]["labels"].items():
            labels.setdefault(label, {})[question] = {
                "auc_delta": entry["auc_delta"], "auc_delta_ci95": entry["auc_delta_ci95"],
                "agreement": entry["agreement"], "lost_detections": entry["lost_detections"]}
    study_auc = lambda section: ((qat_report.get(section) or {}).get("model") or {}).get("study", {}).get("auc")  # noqa: E731
    return {
        "seed": seed,
        "verdicts": {"conversion": model["conversion"]["verdict"], "deployment": model["deployment"]["verdict"]},
        "passes_both": model["conversion"]["verdict"] == model["deployment"]["verdict"] == "PASS",
        "failures": model["failures"],
        "study_labels": labels,
        "kept_float": layers.get("kept_float"),
        "judged_on_training_cache": layers.get("judged"),
        "validation_study_auc": {"float": study_auc("float_validation"), "qat": study_auc("validation")},
        "qat_epochs_run": qat_report["run"]["epochs_run"],
        "qat_train_seconds": qat_report["run"]["train_seconds"],
        "size_bytes": (tflite / QAT_FILE).stat().st_size,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="SEED:RUN_DIR,... (float runs of the demo's data)")
    parser.add_argument("--epochs", type=int, required=True, help="QAT epochs (make demo: 2)")
    parser.add_argument("--keep-float", default="auto", help="convert --keep-float (default auto, as make demo)")
    parser.add_argument("--work", type=Path, required=True, help="where the QAT folders, files and reports go")
    parser.add_argument("--train-cache", type=Path, default=Path("demo_out/cache_train"))
    parser.add_argument("--test-cache", type=Path, default=Path("demo_out/cache_test"))
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from ich_edge.runtime.bench.envelope import envelope, write_result

    head = envelope(FORMAT)  # the load average before the runs
    runs = [(int(seed), Path(path)) for seed, path in (item.split(":", 1) for item in args.runs.split(",") if item)]
    rows = [run_seed(seed, run, args) for seed, run in runs]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip() or None
    result = {**head, "commit": commit,
              "recipe": {"qat_epochs": args.epochs, "keep_float": args.keep_float, "distill_weight": "qat's default",
                         "learning_rate": "qat's default (1/100 of the run's)", "threshold_rule": "qat's default"},
              "data": {"train": str(args.train_cache), "test": str(args.test_cache)},
              "rows": rows, "pass_count": sum(r["passes_both"] for r in rows), "seeds": len(rows)}
    for r in rows:
        print(f"seed {r['seed']}: conversion {r['verdicts']['conversion']}, deployment {r['verdicts']['deployment']}, "
              f"kept float {r['kept_float'] or 'none'}; {len(r['failures'])} failed gate(s)")
    named = {args.work: "<work>"}
    print(f"wrote {write_result(result, 'qat_recipe', args.results_dir, named=named)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
