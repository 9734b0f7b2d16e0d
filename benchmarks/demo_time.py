"""How long ``make demo`` takes, step by step, and what parallel synth buys; a result file each.

Two measurements:

``demo``: runs ``scripts/demo.py --out DIR`` (what ``make demo`` runs; DIR must not hold a
finished demo, or its steps are reused and not timed) and records each step's seconds from
the demo's own "[i/n] step: ok in N s" lines, the total wall time, the load average at start
and end and the usable cores. Goal: at most 15 minutes on an idle 2-core machine.

    python benchmarks/demo_time.py demo --out /tmp/demo_fresh

``record``: the step times of a finished demo folder without running it again: each step's
seconds as ``scripts/demo.py`` recorded them when it ran (``DIR/steps.json``); for a demo
that predates that file, the "[i/n] step: ok in N s" lines of its saved output (``--log``)
and the training time in ``DIR/run/report.json``. Steps with no record stay ``null``.

    python benchmarks/demo_time.py record --demo-out demo_out [--log demo.log]

``synth``: ``ich-edge synth`` of ``--studies`` studies serially (``--workers 1``) and over every
usable core, alternating (``--rounds``), each into a fresh folder; checks that both write the
same bytes (every DICOM file, labels.csv, studies.csv, synth_config.json) and reports the
median wall times and their ratio.

    python benchmarks/demo_time.py synth --studies 40
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
GOAL_S = 15 * 60
STEP_LINE = re.compile(r"^\[(\d+)/(\d+)\] (.+?): (ok|exit \d+) in (\d+) s$")
REUSED_LINE = re.compile(r"^\[(\d+)/(\d+)\] (.+?): done before, reusing its outputs$")


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _envelope(benchmark: str) -> dict:
    """The result's envelope, made before the timed work (its load average at the start)."""
    from ich_edge.runtime.bench.envelope import envelope

    return envelope(f"ich-edge-{benchmark.replace('_', '-')}/1", benchmark=benchmark)


def parse_steps(lines: list[str]) -> list[dict]:
    """The demo's steps from its output: name, status and seconds (reused steps: 0 s)."""
    steps = []
    for line in lines:
        line = line.strip()
        if match := STEP_LINE.match(line):
            steps.append({"step": match[3], "status": match[4], "seconds": int(match[5])})
        elif match := REUSED_LINE.match(line):
            steps.append({"step": match[3], "status": "reused", "seconds": 0})
    return steps


def time_demo(out: Path, extra: list[str]) -> dict:
    """Run scripts/demo.py into ``out``; the result document."""
    command = [sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(out), *extra]
    head = _envelope("demo_time")
    start = time.perf_counter()
    lines = []
    with subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    wall_s = time.perf_counter() - start
    steps = parse_steps(lines)
    return {
        **head,
        "command": "scripts/demo.py --out DIR " + " ".join(extra),
        "exit_code": proc.returncode,
        "wall_s": round(wall_s, 1),
        "steps": steps,
        "reused_steps": [s["step"] for s in steps if s["status"] == "reused"],
        "goal_s": GOAL_S,
        "goal_met": proc.returncode == 0 and wall_s <= GOAL_S and not any(s["status"] == "reused" for s in steps),
    }


def record_demo(demo_out: Path, log: Path | None, more_steps: list[Path] = ()) -> dict:
    """The step times of a finished demo in ``demo_out``; the result document (see ``record``)."""
    from ich_edge.fileio import read_json

    sys.path.insert(0, str(REPO / "scripts"))
    import demo  # scripts/demo.py: the step names and the steps file

    def steps_file(path: Path) -> dict:
        return read_json(path, "a steps.json written by scripts/demo.py", "pass the steps.json of a demo folder")

    names = [step.name for step in demo._steps(demo_out, REPO, 300, 100, None, 0)]
    recorded = {}
    if (demo_out / demo.STEPS_FILE).is_file():
        recorded = {k: {**v, "source": demo.STEPS_FILE} for k, v in steps_file(demo_out / demo.STEPS_FILE).items()}
    for path in more_steps:  # steps.json of another demo folder on the same data (e.g. --stop-after runs)
        for name, entry in steps_file(path).items():
            recorded.setdefault(name, {**entry, "source": f"{path.parent.name}/{path.name}"})
    if log is not None:
        for step in parse_steps(log.read_text().splitlines()):
            if step["status"] != "reused" and step["step"] not in recorded:
                recorded[step["step"]] = {"status": step["status"], "seconds": step["seconds"], "source": "saved output"}
    report = demo_out / "run" / "report.json"
    if "train" not in recorded and report.is_file():
        run = read_json(report, "the run report", "train the demo first")["run"]
        recorded["train"] = {"status": "ok", "seconds": round(run["train_seconds"], 1),
                             "source": "run/report.json train_seconds (fit only, all resumed calls)",
                             "epochs": run["epochs_run"]}
    steps = [{"step": name, **recorded.get(name, {"status": None, "seconds": None, "source": None})} for name in names]
    known = [s["seconds"] for s in steps if s["seconds"] is not None]
    span_s = one_run_span_s(steps, demo.STEPS_FILE)
    result = {
        **_envelope("demo_steps"),
        "demo_out": demo_out.name,
        "steps": steps,
        "known_seconds": round(sum(known), 1),
        "untimed_steps": [s["step"] for s in steps if s["seconds"] is None],
        "goal_s": GOAL_S,
        "one_run": span_s is not None,
        "note": ("every step ran back to back in one demo (its own steps.json): wall_s spans the first step's start "
                 "to the last step's end; load_average_start_end is the recording's, not the demo's")
        if span_s is not None else
        "times of the steps as they ran (possibly in separate sessions, under other load); not one wall-clock run",
    }
    if span_s is not None:
        result["wall_s"] = span_s
    return result


#: Most seconds between one step's end and the next one's start in an uninterrupted demo (finished_utc is
#: rounded to the second; the steps run in one process).
STEP_GAP_S = 30


def one_run_span_s(steps: list[dict], steps_file: str) -> float | None:
    """Wall seconds from the first step's start to the last step's end when every step was recorded in the
    demo folder's own ``steps_file`` and each started at most :data:`STEP_GAP_S` after the previous one ended
    (one uninterrupted run: a resumed demo keeps older records, so its steps are not back to back); else None."""
    from datetime import datetime

    if not steps or any(s.get("source") != steps_file or not s.get("finished_utc") for s in steps):
        return None
    ends = [datetime.strptime(s["finished_utc"], "%Y-%m-%dT%H:%M:%SZ").timestamp() for s in steps]
    starts = [end - s["seconds"] for end, s in zip(ends, steps)]
    if any(not -1.5 <= start - previous_end <= STEP_GAP_S for start, previous_end in zip(starts[1:], ends)):
        return None
    return round(ends[-1] - starts[0], 1)


def folder_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _synth_once(out: Path, studies: int, seed: int, matrix_px: int, workers: int) -> float:
    command = [sys.executable, "-m", "ich_edge", "synth", "--out", str(out), "--studies", str(studies),
               "--seed", str(seed), "--matrix-px", str(matrix_px), "--workers", str(workers), "--force"]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=_env(), check=True, capture_output=True)
    return time.perf_counter() - start


def time_synth(studies: int, seed: int, matrix_px: int, rounds: int) -> dict:
    """Serial against parallel synth, alternating; the result document."""
    from ich_edge.ingest.prepare import default_workers

    cores = default_workers()
    modes = {"serial": 1, "parallel": cores}
    seconds = {mode: [] for mode in modes}
    digests = {}
    head = _envelope("synth_parallel")
    with tempfile.TemporaryDirectory(prefix="ich-edge-synth-time-") as tmp:
        for index in range(rounds):
            for mode in modes if index % 2 == 0 else list(modes)[::-1]:
                out = Path(tmp) / mode
                shutil.rmtree(out, ignore_errors=True)
                seconds[mode].append(_synth_once(out, studies, seed, matrix_px, modes[mode]))
                digests.setdefault(mode, folder_digest(out))
    serial, parallel = (statistics.median(seconds[m]) for m in modes)
    return {
        **head,
        "studies": studies,
        "seed": seed,
        "matrix_px": matrix_px,
        "rounds": rounds,
        "workers": modes,
        "wall_s": {mode: [round(s, 2) for s in values] for mode, values in seconds.items()},
        "median_s": {"serial": round(serial, 2), "parallel": round(parallel, 2)},
        "ratio_serial_over_parallel": round(serial / parallel, 2),
        "byte_identical": digests["serial"] == digests["parallel"],
        "note": "wall time of the whole `ich-edge synth` process, start-up included",
    }


def main(argv: list[str] | None = None) -> int:
    from ich_edge.runtime.bench.envelope import shown, write_result

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    demo = sub.add_parser("demo", help="time scripts/demo.py step by step")
    demo.add_argument("--out", type=Path, required=True, help="a fresh folder for the demo's outputs")
    demo.add_argument("demo_args", nargs="*", help="more arguments for scripts/demo.py (after --)")
    record = sub.add_parser("record", help="step times of a finished demo folder, not run again")
    record.add_argument("--demo-out", type=Path, default=REPO / "demo_out", help="a finished demo folder")
    record.add_argument("--log", type=Path, default=None, help="saved output of scripts/demo.py (older demos)")
    record.add_argument("--steps", type=Path, nargs="*", default=[],
                        help="steps.json of other demo folders (e.g. a --stop-after run) for steps DIR has no time for")
    synth = sub.add_parser("synth", help="serial against parallel synth")
    synth.add_argument("--studies", type=int, default=40)
    synth.add_argument("--seed", type=int, default=1)
    synth.add_argument("--matrix-px", type=int, default=512)
    synth.add_argument("--rounds", type=int, default=2)
    for each in (demo, record, synth):
        each.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.what == "demo":
        result = time_demo(args.out, args.demo_args)
        prefix = "demo_time"
        print(f"make demo: {result['wall_s']:.0f} s (goal {GOAL_S} s), exit {result['exit_code']}")
    elif args.what == "record":
        result = record_demo(args.demo_out, args.log, args.steps)
        prefix = "demo_steps"
        print("\n".join(f"  {s['step']:<22} {s['status'] or '-':<6} {s['seconds'] if s['seconds'] is not None else '-':>8}  {s['source'] or ''}"
                         for s in result["steps"]))
        print(f"known steps: {result['known_seconds']:.0f} s; not timed: {', '.join(result['untimed_steps']) or 'none'}")
    else:
        result = time_synth(args.studies, args.seed, args.matrix_px, args.rounds)
        prefix = "synth_parallel"
        print(f"synth {args.studies} studies at {args.matrix_px} px: serial {result['median_s']['serial']:.1f} s, "
              f"{result['workers']['parallel']} workers {result['median_s']['parallel']:.1f} s, "
              f"ratio {result['ratio_serial_over_parallel']:.2f}x, byte-identical {result['byte_identical']}")
    print(f"wrote {shown(write_result(result, prefix, args.results_dir))}")
    return 0 if result.get("exit_code", 0) == 0 and result.get("byte_identical", True) else 1


if __name__ == "__main__":
    sys.exit(main())
