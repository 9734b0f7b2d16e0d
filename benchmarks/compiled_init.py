"""CompiledModel start-up against the Interpreter's, before and after a change, in one run.

Each measurement is a fresh Python process (as ``ich-edge bench`` runs each row) that
times, on one model file (default: the shipped ``android_demo_assets/model.tflite``):

* ``import_ms``: importing LiteRT's Python modules for the backend (``ai_edge_litert.interpreter``;
  for ``compiled`` also ``ai_edge_litert.compiled_model``, which imports ``ml_dtypes``);
* ``init_ms``: opening the model as bench's worker does (``ich_edge.runtime.bench.worker._open``:
  the Python check of the file, the interpreter, and for ``compiled`` LiteRT's environment
  and compilation), after those imports;
* ``first_open_ms``: the two together, what a process pays for its first model (and what
  bench reported as ``init_ms`` before it split the imports out).

Wall and CPU time, median over ``--rounds`` rounds; the two sources (``--before``: a git
revision, extracted to a temporary folder; ``after``: this checkout) and both backends
alternate within each round, so load from other processes hits all alike. Ratios:
compiled / interpreter per source (goal: ``init_ms`` <= 2x).

    python benchmarks/compiled_init.py --before 979645f --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MODEL = REPO / "android_demo_assets" / "model.tflite"
BACKENDS = ("xnnpack", "compiled")
GOAL_RATIO = 2.0

#: Run in the child: argv = model path, backend, threads; prints one JSON line.
CHILD = r"""
import json, sys, time
path, backend, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
from ich_edge.runtime.bench import worker
wall, cpu = time.perf_counter(), time.process_time()
import ai_edge_litert.interpreter
if backend == "compiled":
    import ai_edge_litert.compiled_model
import_wall, import_cpu = time.perf_counter(), time.process_time()
model = worker._open(path, backend, threads)
end_wall, end_cpu = time.perf_counter(), time.process_time()
print(json.dumps({"import_ms": (import_wall - wall) * 1e3, "import_cpu_ms": (import_cpu - cpu) * 1e3,
                  "init_ms": (end_wall - import_wall) * 1e3, "init_cpu_ms": (end_cpu - import_cpu) * 1e3}))
"""


def extract(revision: str, folder: Path) -> Path:
    """The ``ich_edge`` package of ``revision`` under ``folder`` (for PYTHONPATH)."""
    archive = subprocess.run(["git", "archive", revision, "ich_edge"], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def measure_once(source: Path, model: Path, backend: str, threads: int) -> dict:
    """One fresh process on ``source``'s ich_edge; its timings."""
    env = dict(os.environ, PYTHONPATH=str(source))
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), backend, str(threads)], env=env,
                          capture_output=True, text=True, cwd=tempfile.gettempdir(), timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{backend} on {source} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(samples: list[dict]) -> dict:
    keys = ("import_ms", "import_cpu_ms", "init_ms", "init_cpu_ms")
    row = {key: round(statistics.median(s[key] for s in samples), 1) for key in keys}
    row["first_open_ms"] = round(statistics.median(s["import_ms"] + s["init_ms"] for s in samples), 1)
    row["first_open_cpu_ms"] = round(statistics.median(s["import_cpu_ms"] + s["init_cpu_ms"] for s in samples), 1)
    return row


def run(before: str, model: Path, rounds: int, threads: int) -> dict:
    from ich_edge.runtime.bench.envelope import envelope, finish

    with tempfile.TemporaryDirectory(prefix="ich-edge-compiled-init-") as tmp:
        sources = {"before": extract(before, Path(tmp)), "after": REPO}
        samples = {(s, b): [] for s in sources for b in BACKENDS}
        result = envelope("ich-edge-compiled-init/1", benchmark="compiled_init")  # the load average before the rounds
        for index in range(rounds):
            order = list(samples) if index % 2 == 0 else list(samples)[::-1]
            for source, backend in order:
                samples[source, backend].append(measure_once(sources[source], model, backend, threads))
        finish(result)
    results = {source: {backend: summarize(samples[source, backend]) for backend in BACKENDS} for source in sources}
    for rows in results.values():
        base, compiled = rows["xnnpack"], rows["compiled"]
        compiled["ratio_vs_interpreter"] = {
            key: round(compiled[key] / base[key], 2) for key in ("init_ms", "init_cpu_ms", "first_open_ms", "first_open_cpu_ms")
        }
    after = results["after"]["compiled"]["ratio_vs_interpreter"]
    return {
        **result,
        "model": str(model.relative_to(REPO)) if model.is_relative_to(REPO) else model.name,
        "before": before,
        "after": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        + ("+changes" if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "ich_edge"], cwd=REPO).returncode else ""),
        "threads": threads,
        "rounds": rounds,
        "statistic": "median over rounds, each a fresh process; xnnpack = the Interpreter with XNNPACK",
        "results": results,
        "goal": f"compiled init_ms <= {GOAL_RATIO:g}x the interpreter's",
        "goal_met": after["init_ms"] <= GOAL_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    from ich_edge.runtime.bench.envelope import shown, write_result

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="HEAD", help="git revision to compare against (default HEAD)")
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.before, args.model.resolve(), args.rounds, args.threads)
    print(f"{result['model']}, {args.rounds} rounds, median ms (wall / cpu); load average "
          f"{result['load_average_start_end'][0][0]:.2f} -> {result['load_average_start_end'][1][0]:.2f}")
    for source, rows in result["results"].items():
        for backend, row in rows.items():
            ratio = row.get("ratio_vs_interpreter")
            ratio_text = f"  ratio init {ratio['init_ms']:.2f}x, first open {ratio['first_open_ms']:.2f}x" if ratio else ""
            print(f"  {source:<6} {backend:<9} import {row['import_ms']:7.1f} / {row['import_cpu_ms']:7.1f}  "
                  f"init {row['init_ms']:7.1f} / {row['init_cpu_ms']:7.1f}  first open {row['first_open_ms']:7.1f}{ratio_text}")
    print(f"wrote {shown(write_result(result, 'compiled_init', args.results_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
