"""Peak memory of ``ich-edge train`` against the size of the cache: does RSS grow with the data?

Two synthetic sets 8x apart (default 6 and 48 studies, ``--matrix-px 256``) are prepared at
256 px, then ``ich-edge train --epochs 1 --width 0.25`` runs on each in a fresh process.
The peak RSS of that process comes from ``wait4`` (the kernel's ru_maxrss); a sampler also
reads its VmRSS every 0.1 s, and the RSS at each log line of train says which phase costs
what (TensorFlow import and model build before the first line, the epoch, evaluation,
the report). The input pipeline alone (cache, split, ``train_dataset``, N batches pulled,
no model) is measured on both caches too, and a floor: a process that only imports TensorFlow through
``ich_edge.training.keras`` and builds the model.

    python benchmarks/cache_rss.py                      # this checkout
    python benchmarks/cache_rss.py --source /tmp/before --label before   # another checkout (PYTHONPATH)

Goal: the larger cache costs under 150 MB more peak RSS than the smaller one. Writes
``benchmarks/results/cache_rss_<UTC time>_<host>.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = "import sys; from ich_edge.cli import main; sys.exit(main(sys.argv[1:]))"
RESULTS = REPO / "benchmarks" / "results"
GOAL_MB = 150.0

#: The input pipeline alone (no model): the cache's series, the split, N training batches pulled.
PIPELINE = """
import sys, time
from ich_edge.ingest.cache import Cache
from ich_edge.training import data
cache = Cache.open(sys.argv[1])
series = (cache.series if hasattr(cache, "series") else cache.load_all)()  # load_all: a checkout before format 2
split = data.split_studies(series, 0.2, 0)
dataset, steps = data.train_dataset(data.select_studies(series, split.train_studies), 24, 8, 0)
batches = iter(dataset)
for _ in range(int(sys.argv[2])):
    next(batches)
    time.sleep(1.0)  # a training step's worth of time: prefetch buffers fill as they would in fit
print("pipeline: steps/epoch", steps)
"""

#: What holding the whole index costs at RSNA scale: Cache.series() over many metadata files.
INDEX = """
import sys, resource
from ich_edge.ingest.cache import Cache
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
series = Cache.open(sys.argv[1]).series()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"index: {len(series)} series, {sum(s.num_slices for s in series)} slices, +{(after - before) / 1024:.1f} MB")
"""


def write_fake_index(root: Path, num_series: int, slices: int, size_px: int) -> Path:
    """A format-2 cache of ``num_series`` metadata files (RSNA-like ids; images never read) for INDEX."""
    import numpy as np

    from ich_edge.ingest.cache import Cache, CachedSeries
    from ich_edge.transforms import PreprocessConfig

    if (root / "series").is_dir() and len(list((root / "series").glob("*.json"))) == num_series:
        return root
    cache = Cache.create(root, PreprocessConfig(input_size_px=size_px))
    images = np.zeros((slices, size_px, size_px, 3), np.uint8)
    labels = np.zeros((slices, 6), np.int8)
    ids = tuple(f"ID_{j:09x}" for j in range(slices))
    first = cache.write(CachedSeries("1.2.826.0.1.3680043.8.498.0", "1.2.826.0.1.3680043.8.499.0", images, labels,
                                     labels[0], ids, patient_uid=f"P{0:016x}"))
    template = first.read_text()  # the other series: metadata only (series() never opens the images)
    for k in range(1, num_series):
        uid = f"1.2.826.0.1.3680043.8.498.{k}"
        text = template.replace("498.0", f"498.{k}").replace("499.0", f"499.{k}").replace(f"P{0:016x}", f"P{k:016x}")
        cache.path_for(uid).write_text(text.replace('"ID_', f'"ID_{k:05x}'))
    return root


FLOOR = """
from ich_edge.training.keras import keras, tf
from ich_edge.training.model import ModelConfig, build_model
build_model(ModelConfig(input_size_px={size}, width={width}))
"""


def _env(source: Path | None) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    if source is not None:
        env["PYTHONPATH"] = str(source) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _vm_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def _cwd(env: dict) -> str:
    """Run children in the measured checkout: ``python -c`` puts the working folder first on sys.path."""
    return env.get("ICH_EDGE_RSS_SOURCE") or str(REPO)


def measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; its peak RSS (wait4), the VmRSS timeline and the RSS at each output line."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=_cwd(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples: list[tuple[float, float]] = []
    lines: list[dict] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss = _vm_rss_mb(proc.pid)
            if rss is not None:
                samples.append((round(time.monotonic() - started, 2), round(rss, 1)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for line in proc.stdout:
        rss = _vm_rss_mb(proc.pid)
        lines.append({"t_s": round(time.monotonic() - started, 2), "rss_mb": None if rss is None else round(rss, 1),
                      "line": line.rstrip()[:300]})
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    step = max(1, len(samples) // 200)
    return {
        "cmd": cmd,
        "exit_code": proc.returncode,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "lines": lines,
        "rss_timeline": samples[::step],
    }


def ensure_cache(work: Path, studies: int, matrix_px: int, env: dict, python: str) -> Path:
    """A synthetic set of ``studies`` and its cache at ``matrix_px`` under ``work`` (reused when present)."""
    synth = work / f"synth{studies}_{matrix_px}"
    if not (synth / "labels.csv").is_file():
        subprocess.run([python, "-c", CLI, "synth", "--out", str(synth), "--studies", str(studies),
                        "--matrix-px", str(matrix_px), "--force"], check=True, env=env, cwd=_cwd(env))
    cache = work / f"cache{studies}_{matrix_px}_{env.get('ICH_EDGE_RSS_LABEL', 'x')}"
    subprocess.run([python, "-c", CLI, "prepare", "--dicom", str(synth / "dicom"), "--labels-csv",
                    str(synth / "labels.csv"), "--out", str(cache), "--input-size-px", str(matrix_px)], check=True, env=env, cwd=_cwd(env))
    return cache


def cache_size_mb(cache: Path) -> float:
    return round(sum(p.stat().st_size for p in (cache / "series").iterdir()) / 1e6, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=6, help="studies in the small set")
    parser.add_argument("--large", type=int, default=48, help="studies in the large set")
    parser.add_argument("--matrix-px", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ich_edge_cache_rss"), help="synthetic sets and caches")
    parser.add_argument("--source", type=Path, default=None, help="checkout to measure (PYTHONPATH); default this one")
    parser.add_argument("--label", default="after", help="name of this measurement in the result")
    parser.add_argument("--pipeline-batches", type=int, default=9, help="batches pulled in the pipeline-only runs")
    parser.add_argument("--index-series", type=int, default=21744, help="series in the metadata-only index run (RSNA: ~21,744)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from ich_edge.runtime.bench.envelope import envelope, shown, write_result

    envelope_ = envelope("ich-edge-cache-rss/1", benchmark="cache_rss")  # the load average before the runs
    python = sys.executable
    env = dict(_env(args.source), ICH_EDGE_RSS_LABEL=args.label, ICH_EDGE_RSS_SOURCE=str(args.source or REPO))
    args.work.mkdir(parents=True, exist_ok=True)
    floor = measure([python, "-c", FLOOR.format(size=args.matrix_px, width=args.width)], env)
    print(f"floor (import TF + build model): {floor['peak_rss_mb']:.0f} MB", flush=True)
    index = None
    if args.source is None and args.index_series:
        fake = write_fake_index(args.work / f"index{args.index_series}", args.index_series, 35, 32)
        index = measure([python, "-c", INDEX, str(fake)], env)
        print(index["lines"][-1]["line"] if index["lines"] else index, flush=True)
    runs = []
    for studies in (args.small, args.large):
        cache = ensure_cache(args.work, studies, args.matrix_px, env, python)
        out = args.work / f"run{studies}_{args.label}"
        cmd = [python, "-c", CLI, "train", "--data", str(cache), "--out", str(out), "--epochs", "1",
               "--width", str(args.width), "--force"]
        pipeline = measure([python, "-c", PIPELINE, str(cache), str(args.pipeline_batches)], env)
        print(f"{studies} studies: input pipeline alone ({args.pipeline_batches} batches) peak RSS "
              f"{pipeline['peak_rss_mb']:.0f} MB", flush=True)
        result = measure(cmd, env)
        result |= {"studies": studies, "cache_mb": cache_size_mb(cache), "pipeline_only": pipeline}
        runs.append(result)
        print(f"{studies} studies (cache {result['cache_mb']} MB): peak RSS {result['peak_rss_mb']:.0f} MB, "
              f"exit {result['exit_code']}, {result['wall_s']} s", flush=True)
    growth = runs[1]["peak_rss_mb"] - runs[0]["peak_rss_mb"]
    pipeline_growth = runs[1]["pipeline_only"]["peak_rss_mb"] - runs[0]["pipeline_only"]["peak_rss_mb"]
    result = {
        **envelope_,
        "label": args.label,
        "source": str(args.source or REPO),
        "config": {"matrix_px": args.matrix_px, "width": args.width, "epochs": 1, "studies": [args.small, args.large]},
        "floor": floor,
        "index_at_scale": index,
        "runs": runs,
        "growth_mb": round(growth, 1),
        "pipeline_growth_mb": round(pipeline_growth, 1),
        "goal_mb": GOAL_MB,
        "goal_met": growth < GOAL_MB and all(r["exit_code"] == 0 for r in runs),
    }
    paths = [shown(write_result(result, "cache_rss", args.results_dir, named={args.work: "<work>"}))]
    print(f"larger cache costs {growth:+.0f} MB in train, {pipeline_growth:+.0f} MB in the input pipeline alone "
          f"(goal < {GOAL_MB:.0f}); wrote {', '.join(map(str, paths))}")
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
