"""``make demo``: the whole pipeline end to end on the built-in synthetic default.

synth -> prepare -> train -> qat -> convert (all precisions) -> parity -> bench -> assets,
then one summary table. Every step writes under ``--out`` (default ``demo_out/``) and
nothing else: the checkout stays as it was. Rerunnable: a step whose outputs exist is
skipped, so an interrupted demo resumes where it stopped (delete a step's folder to redo it).

Run as ``python scripts/demo.py [--out DIR] [--train-studies N] [--test-studies N]`` (``make demo``).
``python scripts/demo.py --release`` (``make release-assets``) is the deliberate second
step that refreshes the committed copies from a finished demo: ``android_demo_assets/``,
the bench JSON in ``benchmarks/results/`` and the README's results table; it prints what it
changed.

**What ships.** One ``ich-edge parity`` run answers conversion parity (each file against the
Keras model it was converted from) and deployment parity (each file against the validated
float model) for every precision. The demo ships the first file in :data:`SHIP_PREFERENCE`
(qat-int8, the phone precision, then int8-mixed, int8, fp16, fp32: ``ich_edge.precisions``)
whose verdict is PASS on both questions, and says so when that is not qat-int8, naming what
each file before it failed: a smaller
model that says something else than the validated one is no use to a triage team, a larger
one that says the same is. ``dynamic`` is never shipped (the slowest file on CPU). When no
file passes, the demo stops with exit code 1 (4 when the test set was too small to judge)
and the reasons, and writes no assets. ``ich-edge assets`` checks the same report again
(by sha256) before it writes anything, and refuses a file whose outputs on the kernels apps
run could flip a golden-sample decision: the demo then ships the next file that passed
(the refusal is recorded in ``assets_refused.json`` and in the reasons).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ich_edge.cli import main as cli_main

from ich_edge.fileio import read_optional_json
from ich_edge.precisions import BY_NAME, NAMES as PRECISIONS, SHIP_ORDER as SHIP_PREFERENCE

SHIPPED_FILE = "shipped.json"
#: Each step's wall seconds and outcome when it last ran (``{step: {"status", "seconds", "finished_utc"}}``),
#: kept across resumed runs: ``benchmarks/demo_time.py record`` reads it.
STEPS_FILE = "steps.json"

#: Files (by sha256) that ``ich-edge assets`` refused for apps in this demo folder, with the reason.
REFUSED_FILE = "assets_refused.json"


@dataclass
class Step:
    """One pipeline step: skipped when ``done()`` is true, otherwise ``args`` are run."""

    name: str
    args: list[str]
    done: Callable[[], bool]
    allowed_exit_codes: tuple[int, ...] = (0,)
    #: When set, computes ``args`` just before the step runs (it may stop the demo by raising).
    make_args: Callable[[], list[str]] | None = None
    seconds: float = field(default=0.0)
    status: str = field(default="pending")


#: The demo's prepared caches under ``--out`` (training, held-out test).
CACHE_TRAIN, CACHE_TEST = "cache_train", "cache_test"


def data_steps(out: Path, train_studies: int, test_studies: int) -> list[Step]:
    """The demo's data: synthetic training (seed 1) and test (seed 2) studies, a preview, both caches."""
    synth_train, synth_test = out / "synth_train", out / "synth_test"
    cache_train, cache_test = out / CACHE_TRAIN, out / CACHE_TEST
    return [
        Step("synth (train, seed 1)", ["synth", "--out", str(synth_train), "--studies", str(train_studies), "--seed", "1"],
             lambda: (synth_train / "labels.csv").is_file()),
        Step("synth (test, seed 2)", ["synth", "--out", str(synth_test), "--studies", str(test_studies), "--seed", "2"],
             lambda: (synth_test / "labels.csv").is_file()),
        Step("preview", ["synth", "--out", str(synth_train), "--preview", str(out / "synth_preview.png")],
             lambda: (out / "synth_preview.png").is_file()),
        Step("prepare (train)", ["prepare", "--dicom", str(synth_train / "dicom"), "--labels-csv",
                                 str(synth_train / "labels.csv"), "--out", str(cache_train)],
             lambda: (cache_train / "problems" / "0-of-1.json").is_file()),
        Step("prepare (test)", ["prepare", "--dicom", str(synth_test / "dicom"), "--labels-csv",
                                str(synth_test / "labels.csv"), "--out", str(cache_test),
                                "--patient-key", str(cache_train / "patient.key")],  # patients comparable across them
             lambda: (cache_test / "problems" / "0-of-1.json").is_file()),
    ]


def _steps(out: Path, repo: Path, train_studies: int, test_studies: int, epochs: int | None, seed: int = 0) -> list[Step]:
    cache_train, cache_test = out / CACHE_TRAIN, out / CACHE_TEST
    run, qat, tflite = out / "run", out / "qat", out / "tflite"
    parity, bench_json = out / "parity", out / "bench.json"
    models = [str(tflite / BY_NAME[p].file_name) for p in PRECISIONS]
    # Conversion parity: post-training variants against the float run, qat-int8 against the
    # QAT model (fine-tuning changed the weights). Deployment parity: every file against the
    # validated float run. One report for both, read by the ship decision and by `assets`.
    tflite_args = [arg for m in models for arg in ("--model", m)]
    # The default training config is the demo's: half-width edge backbone, ~25 s per epoch on 2 cores.
    train_args = ["train", "--data", str(cache_train), "--test", str(cache_test), "--out", str(run)]
    train_args += ["--epochs", str(epochs)] if epochs else []
    train_args += ["--seed", str(seed)] if seed else []
    return [
        *data_steps(out, train_studies, test_studies),
        Step("train", train_args, lambda: (run / "report.json").is_file()),
        # QAT aimed at the validated model: distillation on its per-slice probabilities, thresholds that agree with it.
        Step("qat", ["qat", "--model", str(run), "--data", str(cache_train), "--out", str(qat), "--epochs", "2",
                     *(["--seed", str(seed)] if seed else [])],
             lambda: (qat / "report.json").is_file()),
        # Float I/O: XNNPACK does not take the uint8 -> int8 QUANTIZE that --io int8 puts at the
        # image input, and the demo model's study ran 18% slower with it (converters/README.md).
        # --keep-float fewest: the float search, then back to int8 every layer whose float costs no decision on the
        # training cache (seeds 0 and 2: 22 float groups -> 14 and 5, held-out parity unchanged; docs/experiments.md).
        Step("convert", ["convert", "--model", str(run), "--model", str(qat), "--precision", "all",
                         "--keep-float", "fewest", "--data", str(cache_train), "--out", str(tflite)],
             lambda: all(Path(m).is_file() for m in models)),
        # Exit 1 (a gate failed) and 4 (insufficient evidence) leave a report: the ship step decides.
        Step("parity", ["parity", "--reference", str(run), "--converted-from", str(qat), *tflite_args,
                        "--test", str(cache_test), "--out", str(parity), "--force"],
             lambda: _parity_format(parity / "report.json") == PARITY_FORMAT, allowed_exit_codes=(0, 1, 4)),
        # 3 rounds: the files take turns, so a load change on the machine hits every file alike.
        Step("bench", ["bench", *tflite_args, "--threads", "2", "--backend", "xnnpack,reference,compiled,gpu,gpu+cpu",
                       "--rounds", "3", "--test", str(cache_test), "--out", str(bench_json), "--force"],
             lambda: bench_json.is_file()),
        Step("assets", ["assets"], lambda: (out / "assets.done").is_file(),
             make_args=lambda: _assets_args(out, parity / "report.json", out / ASSETS_DIR)),
    ]


PARITY_FORMAT = "ich-edge-parity/2"
ASSETS_DIR, TABLE_FILE = "android_demo_assets", "results_table.txt"


def _parity_format(path: Path) -> str | None:
    return (read_optional_json(path) or {}).get("format")


def choose_shipped_model(parity_report: Path, preference: tuple[str, ...] = SHIP_PREFERENCE,
                         refused: dict | None = None) -> tuple[dict, list[str]]:
    """The parity report's entry of the file to ship, and the lines that explain the choice.

    The first precision of ``preference`` whose file passed both conversion and deployment
    parity and is not in ``refused`` (sha256 of a file -> why ``assets`` refused it). Raises :class:`GateFailedError` (exit 1) when none passed, or
    :class:`InsufficientEvidenceError` (exit 4) when none failed a gate but the test set
    was too small to judge; the message lists each candidate's reasons.
    """
    import json

    from ich_edge.errors import ConfigError, GateFailedError, InsufficientEvidenceError

    try:
        report = json.loads(Path(parity_report).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{parity_report} is not a parity report ({err}); rerun the parity step") from err
    by_precision = {m["precision"]: m for m in report.get("models", [])}
    lines, verdicts = [], []
    for precision in preference:
        entry = by_precision.get(precision)
        if entry is None:
            continue
        if entry.get("verdict") == "PASS" and entry.get("sha256") in (refused or {}):
            verdicts.append("FAIL")
            lines.append(f"not shipping {precision}: it passed parity, but {refused[entry['sha256']]}")
            continue
        if entry.get("verdict") == "PASS":
            if precision != preference[0]:
                lines.append(f"shipping {precision} ({entry['file']}), the first of {', '.join(preference)} that passed parity")
            return entry, lines
        verdicts.append(entry.get("verdict"))
        reasons = (_first_reasons(entry) or ["no reason recorded"])[:3]
        lines.append(f"not shipping {precision}: parity {entry.get('verdict')}: " + "; ".join(reasons))
    if not verdicts:
        raise ConfigError(f"{parity_report} holds none of {', '.join(preference)}; rerun the parity step")
    error = GateFailedError if "FAIL" in verdicts else InsufficientEvidenceError
    raise error("no model passed parity, so the demo ships none:\n  " + "\n  ".join(lines))


def _first_reasons(entry: dict) -> list[str]:
    """Deployment parity's failures first (what the triage user would notice), then conversion's, then gaps."""
    questions = [entry.get(key) or {} for key in ("deployment", "conversion")]
    return [line for q in questions for line in q.get("failures", [])] or [
        line for q in questions for line in q.get("not_evaluable", [])] or entry.get("failures", [])


def _assets_args(out: Path, parity_report: Path, assets_dir: Path) -> list[str]:
    from ich_edge.fileio import write_json_atomic

    entry, lines = choose_shipped_model(parity_report, refused=read_optional_json(out / REFUSED_FILE) or {})
    for line in lines:
        print(f"  {line}", flush=True)
    write_json_atomic(out / SHIPPED_FILE, {"file": entry["path"], "precision": entry["precision"],
                                           "sha256": entry["sha256"], "parity_report": str(parity_report),
                                           "why": lines or [f"{entry['precision']} passed parity"]})
    return ["assets", "--model", entry["path"], "--parity", str(parity_report), "--out", str(assets_dir), "--force"]


def _run_assets(out: Path, step: Step) -> int:
    """Run ``assets`` on the chosen file. When it refuses the file for apps (exit 1: the kernels apps
    run could flip a golden-sample decision; its message is printed), record that in
    ``assets_refused.json`` and run it on the next file that passed parity; returns the last exit code."""
    from ich_edge.fileio import write_json_atomic

    code = cli_main(step.args)
    while code == 1 and step.make_args is not None:
        refused = read_optional_json(out / REFUSED_FILE) or {}
        refused[(read_optional_json(out / SHIPPED_FILE) or {}).get("sha256", "?")] = (
            "`ich-edge assets` refused it for apps (the kernels apps run could flip a golden-sample decision)")
        write_json_atomic(out / REFUSED_FILE, refused)
        (out / SHIPPED_FILE).unlink(missing_ok=True)
        stopped = _make_args(step, "at 'assets'")
        if stopped is not None:
            return stopped
        print(f"assets: ich-edge {' '.join(step.args)}", flush=True)
        code = cli_main(step.args)
    return code


def _make_args(step: Step, where: str) -> int | None:
    """Compute ``step.args`` just before it runs; when that stops the demo, print why and return the exit code."""
    from ich_edge.errors import IchEdgeError

    try:
        step.args = step.make_args()
    except IchEdgeError as err:
        print(f"demo stopped {where}: {err}", file=sys.stderr)
        return err.exit_code
    return None


def _record_timing(path: Path, timings: dict, step: Step) -> None:
    """Add ``step``'s outcome and wall seconds to the demo's ``steps.json`` (atomic)."""
    from datetime import datetime, timezone

    from ich_edge.fileio import write_json_atomic

    timings[step.name] = {"status": step.status, "seconds": round(step.seconds, 1),
                          "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    write_json_atomic(path, timings)


def update_readme(readme: Path, table: str) -> None:
    """Replace the README's results block (between the results markers) with ``table``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from readme_tables import replace_block  # benchmarks/readme_tables.py: the one owner of README blocks

    text = readme.read_text()
    readme.write_text(replace_block(text, "results", f"```\n{table}\n```"))


def run_demo(out: Path, train_studies: int, test_studies: int, epochs: int | None = None, seed: int = 0,
             stop_after: str | None = None) -> int:
    """Run (or resume) the demo pipeline (training and QAT seeded with ``seed``); returns the process exit code.

    ``stop_after``: the name of the last step to run (the summary table is then not printed).
    """
    repo = Path(__file__).resolve().parent.parent
    steps = _steps(out, repo, train_studies, test_studies, epochs, seed)
    if stop_after is not None:
        names = [step.name for step in steps]
        if stop_after not in names:
            print(f"--stop-after must name a step: {', '.join(repr(n) for n in names)}", file=sys.stderr)
            return 2
        steps = steps[: names.index(stop_after) + 1]
    out.mkdir(parents=True, exist_ok=True)
    timings = read_optional_json(out / STEPS_FILE) or {}
    for index, step in enumerate(steps, start=1):
        header = f"[{index}/{len(steps)}] {step.name}"
        if step.done():
            step.status = "reused"
            step.seconds = float((timings.get(step.name) or {}).get("seconds", 0.0))
            print(f"{header}: done before, reusing its outputs", flush=True)
            continue
        if step.make_args is not None:
            stopped = _make_args(step, f"before '{step.name}'")
            if stopped is not None:
                return stopped
        print(f"{header}: ich-edge {' '.join(step.args)}", flush=True)
        start = time.perf_counter()
        code = _run_assets(out, step) if step.name == "assets" else cli_main(step.args)
        step.seconds = time.perf_counter() - start
        if code not in step.allowed_exit_codes:
            print(f"demo stopped: step '{step.name}' failed with exit code {code}; fix it and rerun make demo", file=sys.stderr)
            return code
        step.status = "ok" if code == 0 else f"exit {code}"
        if step.name == "assets":
            (out / "assets.done").write_text("ok\n")
        print(f"{header}: {step.status} in {step.seconds:.0f} s", flush=True)
        _record_timing(out / STEPS_FILE, timings, step)
    print()
    print("  (reused: the seconds it took when it ran)")
    print("\n".join(f"  {s.name:<22} {s.status:<8} {s.seconds:7.0f} s" for s in steps))
    print()
    if stop_after is not None:
        print(f"stopped after {stop_after!r} as asked")
        return 0
    from summary import summary_table  # scripts/summary.py, beside this script

    shipped = read_optional_json(out / SHIPPED_FILE)
    table = summary_table([out / "parity" / "report.json"], out / "bench.json",
                          shipped_sha256=(shipped or {}).get("sha256"))
    print(table)
    if shipped:
        print(f"\nshipped {shipped['precision']} ({shipped['file']}, sha256 {shipped['sha256'][:16]}): "
              + "; ".join(shipped["why"]))
    (out / TABLE_FILE).write_text(table + "\n")
    print(f"\nthe checkout is unchanged; `make release-assets` copies {out / ASSETS_DIR}, the bench JSON and this "
          "table into it")
    return 0


def release(out: Path, repo: Path | None = None) -> list[Path]:
    """Refresh the committed copies from the finished demo in ``out``; returns the paths changed.

    ``android_demo_assets/`` is replaced by ``out/android_demo_assets``, ``out/bench.json``
    goes to ``benchmarks/results/bench_<UTC time>_<host>.json`` and the README's results
    block gets ``out/results_table.txt``.
    """
    import json
    import shutil

    from ich_edge.errors import ConfigError
    from ich_edge.fileio import replace_dir
    from ich_edge.runtime.bench.runner import result_file_name

    repo = repo or Path(__file__).resolve().parent.parent
    assets, bench, table = out / ASSETS_DIR, out / "bench.json", out / TABLE_FILE
    missing = [str(p) for p in (assets / "manifest.json", bench, table) if not p.exists()]
    if missing:
        raise ConfigError(f"no finished demo in {out} (missing {', '.join(missing)}); run make demo first")
    target = repo / ASSETS_DIR
    staging = repo / f".{ASSETS_DIR}.new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(assets, staging)
    replace_dir(staging, target)
    result = json.loads(bench.read_text())
    bench_copy = repo / "benchmarks" / "results" / result_file_name(result)
    shutil.copyfile(bench, bench_copy)
    update_readme(repo / "README.md", table.read_text().rstrip("\n"))
    return [target, bench_copy, repo / "README.md"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/demo.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for all demo outputs")
    parser.add_argument("--train-studies", type=int, default=300)
    parser.add_argument("--test-studies", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: ich-edge train's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of train and qat (benchmarks/seed_spread.py)")
    parser.add_argument("--stop-after", default=None, metavar="STEP",
                        help="stop after this step, e.g. 'prepare (test)' (benchmarks/demo_time.py times parts this way)")
    parser.add_argument("--release", action="store_true",
                        help="copy a finished demo's assets, bench JSON and table into the checkout (make release-assets)")
    args = parser.parse_args(argv)
    if args.release:
        from ich_edge.errors import IchEdgeError

        try:
            changed = release(args.out)
        except IchEdgeError as err:
            print(f"release-assets: {err}", file=sys.stderr)
            return err.exit_code
        print("\n".join(f"updated {path}" for path in changed))
        return 0
    return run_demo(args.out, args.train_studies, args.test_studies, args.epochs, args.seed, args.stop_after)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
