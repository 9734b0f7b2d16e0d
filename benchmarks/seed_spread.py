"""The demo's training repeated with several seeds: how much the test AUCs move from seed to seed.

The data are the demo's (``ich-edge synth`` seed 1, 300 training studies; seed 2, 100 test
studies; the caches of a finished ``make demo`` are reused when ``--demo-out`` has them).
Each training seed runs ``ich-edge train --seed S`` with the demo's defaults (the seed sets
the split, the window order, the augmentation draws and the initial weights); its test-set
report is read back. The result gives, per label, the test study AUC and slice AUC of every
seed and their mean, sample standard deviation, min and max.

    python benchmarks/seed_spread.py [--demo-out demo_out] [--seeds 0,1,2] [--work DIR] [--ship]

``--ship`` runs each seed's whole demo (``scripts/demo.py --seed S`` on the same data: train,
qat, convert every precision, parity, bench, assets; seed 0 is ``make demo`` itself, in
DEMO_OUT) and records, per seed, both parity verdicts of every precision, the precision the
demo shipped, whether that is an integer file, and its size and study latency over fp16's
from the same bench run: the issue's goal is an integer file that passes both questions, at
most 0.75x fp16's latency and 0.8x its size, on every seed (``pass_count``).

Writes ``benchmarks/results/seed_spread_<UTC time>_<host>.json`` and prints the table. A
seed whose run folder already has a report is not trained again (rerunnable).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the ich_edge of this checkout
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))  # demo.py: the demo's data steps

RESULTS = Path(__file__).resolve().parent / "results"
FORMAT = "ich-edge-seed-spread/1"


def ich_edge(*args: str) -> None:
    print("$ ich-edge " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "ich_edge", *args], check=True)


def demo_caches(demo_out: Path, train_studies: int, test_studies: int) -> tuple[Path, Path]:
    """The demo's training and test caches: ``make demo``'s own data steps, run where not done yet."""
    import demo  # scripts/demo.py

    for step in demo.data_steps(demo_out, train_studies, test_studies):
        if not step.done():
            ich_edge(*step.args)
    return demo_out / demo.CACHE_TRAIN, demo_out / demo.CACHE_TEST


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min and max of ``values`` (None when empty)."""
    if not values:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def seed_row(seed: int, report: dict) -> dict:
    """What one seed's ``report.json`` says about the test set (and how training went)."""
    test = report["test"]
    return {
        "seed": seed,
        "study_auc": test["model"]["study"]["auc"],
        "slice_auc": test["model"]["slice"]["auc"],
        "slice_rsna_log_loss": test["model"]["slice"]["rsna_log_loss"],
        "baseline_study_auc": test["baseline"]["study"]["auc"],
        "n_test_studies": test["n_studies"],
        "n_train_cache_series": report["data"]["series"],
        "epochs_run": report["run"]["epochs_run"],
        "best_epoch": report["run"]["best_epoch"],
        "train_seconds": report["run"]["train_seconds"],
    }


def seed_demo_out(demo_out: Path, work: Path, seed: int) -> Path:
    """The demo folder of ``seed``: DEMO_OUT for 0, else WORK/seed_S with the demo's data linked in."""
    import demo  # scripts/demo.py

    if seed == 0:
        return demo_out
    out = work / f"seed_{seed}"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("synth_train", "synth_test", "synth_preview.png", demo.CACHE_TRAIN, demo.CACHE_TEST):
        link = out / name
        if not link.exists():
            link.symlink_to(Path(os.path.relpath(demo_out / name, out)))
    return out


def ship_row(seed: int, out: Path, code: int) -> dict:
    """What one seed's demo shipped, with both parity verdicts of every file and the bench ratios over fp16."""
    import demo  # scripts/demo.py
    from ich_edge.precisions import BY_NAME, FP16

    parity = json.loads((out / "parity" / "report.json").read_text()) if (out / "parity" / "report.json").is_file() else {}
    bench = json.loads((out / "bench.json").read_text()) if (out / "bench.json").is_file() else {}
    shipped = json.loads((out / demo.SHIPPED_FILE).read_text()) if (out / demo.SHIPPED_FILE).is_file() else None
    verdicts = {m["precision"]: {"conversion": m["conversion"]["verdict"], "deployment": m["deployment"]["verdict"],
                                 "failures": m["failures"][:4]} for m in parity.get("models", [])}
    latency = {}
    for row in bench.get("rows", []):
        if row.get("backend") == "xnnpack" and (row.get("study_latency_ms") or {}).get("p50"):
            latency.setdefault(row.get("variant"), row["study_latency_ms"]["p50"])
    sizes = {p: (out / "tflite" / BY_NAME[p].file_name).stat().st_size for p in verdicts
             if (out / "tflite" / BY_NAME[p].file_name).is_file()}
    precision = (shipped or {}).get("precision")
    ratio = lambda table: table[precision] / table[FP16] if precision in table and table.get(FP16) else None  # noqa: E731
    integer = bool(precision and BY_NAME[precision].integer)
    row = {"seed": seed, "demo_exit_code": code, "shipped": precision, "why": (shipped or {}).get("why"),
           "integer_shipped": integer, "latency_over_fp16": ratio(latency), "size_over_fp16": ratio(sizes),
           "verdicts": verdicts, "study_latency_ms_p50": latency, "size_bytes": sizes}
    row["meets_goal"] = bool(integer and row["latency_over_fp16"] is not None and row["latency_over_fp16"] <= 0.75
                             and row["size_over_fp16"] is not None and row["size_over_fp16"] <= 0.8)
    row["passes_and_ships_integer"] = integer  # the shipped file passed both parity questions (the demo ships no other)
    row["layer_reports"] = layer_summaries(out / "tflite")
    qat_report = out / "qat" / "report.json"
    row["qat_threshold_rules"] = json.loads(qat_report.read_text()).get("threshold_rules") if qat_report.is_file() else None
    return row


def layer_summaries(tflite: Path) -> dict:
    """Per integer file of a demo: its worst layers, the groups it keeps float and the search path (``<file>.layers.json``)."""
    out = {}
    for path in sorted(tflite.glob("*.layers.json")):
        report = json.loads(path.read_text())
        out[path.name.removesuffix(".layers.json")] = {
            "worst": [{k: row.get(k) for k in ("group", "rmse_per_scale", "restored")} for row in report["layers"][:3]],
            "judged": report.get("judged"), "kept_float": report.get("kept_float"),
            "search": [{"kept_float": len(step["kept_float"]), "last": (step["kept_float"] or [None])[-1],
                        "disagreements": step["disagreements"], "passes": step["passes"]} for step in report.get("search", [])],
        }
    return out


def summarize(rows: list[dict]) -> dict:
    """Per label: the spread of the test study AUC and slice AUC over the seeds in ``rows``."""
    labels = list(rows[0]["study_auc"])
    out = {}
    for level in ("study_auc", "slice_auc", "baseline_study_auc"):
        out[level] = {label: spread([row[level][label] for row in rows if row[level].get(label) is not None])
                      for label in labels}
    out["slice_rsna_log_loss"] = spread([row["slice_rsna_log_loss"] for row in rows])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-out", type=Path, default=Path("demo_out"), help="a make demo folder (its caches are reused)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    parser.add_argument("--work", type=Path, default=None, help="run folders (default: DEMO_OUT/seeds)")
    parser.add_argument("--train-studies", type=int, default=300)
    parser.add_argument("--test-studies", type=int, default=100)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--ship", action="store_true", help="run each seed's whole demo and record what it ships")
    args = parser.parse_args(argv)
    from ich_edge.runtime.bench.envelope import envelope, write_result

    head = envelope(FORMAT)  # the load average before the runs
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    cache_train, cache_test = demo_caches(args.demo_out, args.train_studies, args.test_studies)
    work = args.work or args.demo_out / "seeds"
    rows, ship_rows = [], []
    for seed in seeds:
        if args.ship:
            import demo  # scripts/demo.py

            out = seed_demo_out(args.demo_out, work, seed)
            code = demo.run_demo(out, args.train_studies, args.test_studies, seed=seed)
            run = out / "run"
            ship_rows.append(ship_row(seed, out, code))
        else:
            run = work / f"seed_{seed}"
            if not (run / "report.json").is_file():
                ich_edge("train", "--data", str(cache_train), "--test", str(cache_test), "--out", str(run), "--seed", str(seed))
        rows.append(seed_row(seed, json.loads((run / "report.json").read_text())))
    summary = summarize(rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip() or None
    result = {**head, "commit": commit, "seeds": seeds,
              "data": {"train": str(cache_train), "test": str(cache_test), "synth_seeds": {"train": 1, "test": 2},
                       "train_cache_series": rows[0]["n_train_cache_series"], "test_studies": rows[0]["n_test_studies"]},
              "rows": rows, "summary": summary}
    if args.ship:
        result["ship"] = {"rows": ship_rows, "pass_count": sum(r["meets_goal"] for r in ship_rows), "seeds": len(ship_rows),
                          "integer_count": sum(r["passes_and_ships_integer"] for r in ship_rows),
                          "goal": "an integer file (qat-int8 or int8-mixed) passes both parity questions and ships, "
                                  "study latency <= 0.75x fp16 and size <= 0.8x fp16 (XNNPACK, the demo's bench run)"}
        for r in ship_rows:
            print(f"seed {r['seed']}: shipped {r['shipped']} (integer: {r['integer_shipped']}), latency x fp16 "
                  f"{r['latency_over_fp16']}, size x fp16 {r['size_over_fp16']}, goal met: {r['meets_goal']}")
    print(f"{'label':<18} {'study AUC mean':>14} {'sd':>6} {'min':>6} {'max':>6}")
    for label, s in summary["study_auc"].items():
        if s["n"] == 0:
            print(f"{label:<18} {'not evaluable':>14}")
            continue
        print(f"{label:<18} {s['mean']:>14.3f} {s['sd']:>6.3f} {s['min']:>6.3f} {s['max']:>6.3f}")
    print(f"wrote {write_result(result, 'seed_spread', args.results_dir, named={work: '<work>'})}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
