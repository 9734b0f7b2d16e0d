"""RLE Lossless decoding: predict's read of the golden sample, pydicom's numpy decoder against pylibjpeg-rle.

The shipped golden sample (``android_demo_assets/sample/dicom``, 32 RLE Lossless slices)
is read the way ``predict`` reads a series: ``find_series`` once, then ``series.load()``
(decode, HU, nothing more; predict's ``read`` stage) timed per round. Three decoders, in
one process and in alternation round by round, so that load from other processes hits
all alike:

* ``pydicom-numpy``: ``Dataset.pixel_array`` with pydicom's own RLE decoder (what ran
  before ``pylibjpeg-rle`` was a runtime dependency), chosen by hiding the ``pylibjpeg``
  plugin from pydicom's RLE decoder and ich-edge's direct path;
* ``pixel_array+rle``: ``Dataset.pixel_array`` with the pylibjpeg-rle plugin, which pydicom
  prefers once ``pylibjpeg-rle`` is installed;
* ``direct-rle``: what ich-edge does now (``ich_edge.dicom.pixels.DIRECT_DECODERS``): the
  frame straight to pylibjpeg-rle, without ``pixel_array``'s per-file overhead.

All must give identical HU volumes (checked). Reported: median wall and CPU ms per study
over the rounds, and the ratio ``pydicom-numpy / direct-rle`` (goal >= 4x).

    python benchmarks/rle_decode.py --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "android_demo_assets" / "sample" / "dicom"
RESULTS = REPO / "benchmarks" / "results"
GOAL_RATIO = 4.0


NAMES = ("pydicom-numpy", "pixel_array+rle", "direct-rle")


@contextmanager
def decoder(name: str):
    """Within the block RLE Lossless is decoded by ``name`` (one of :data:`NAMES`)."""
    from pydicom.pixels.decoders.base import RLELosslessDecoder

    from ich_edge.dicom import pixels

    available = RLELosslessDecoder._available  # pydicom has no public switch; a benchmark may peek
    if "pylibjpeg" not in available:
        raise SystemExit("pylibjpeg-rle is not installed: pip install pylibjpeg-rle")
    if name == "direct-rle":
        yield
        return
    direct = pixels.DIRECT_DECODERS
    pixels.DIRECT_DECODERS = {}
    plugin = available.pop("pylibjpeg") if name == "pydicom-numpy" else None
    try:
        yield
    finally:
        pixels.DIRECT_DECODERS = direct
        if plugin is not None:
            available["pylibjpeg"] = plugin
            # pydicom tries plugins in insertion order: put pylibjpeg back first
            for label in [label for label in available if label != "pylibjpeg"]:
                available[label] = available.pop(label)


def read_once(series) -> tuple[float, float, np.ndarray]:
    """Wall ms, CPU ms and the HU volume of one ``series.load()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    loaded = series.load()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3, loaded.images


def run(folder: Path, rounds: int) -> dict:
    """Time both decoders on ``folder`` for ``rounds`` alternating rounds; the result document."""
    import pydicom

    from ich_edge.dicom import find_series
    from ich_edge.runtime.bench.envelope import envelope

    (series,) = find_series(folder).series
    names = NAMES
    syntax = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).file_meta.TransferSyntaxUID
    volumes, wall_ms, cpu_ms = {}, {n: [] for n in names}, {n: [] for n in names}
    for name in names:  # warm-up: page cache, imports
        with decoder(name):
            volumes[name] = read_once(series)[2]
    if not all(np.array_equal(volumes[names[0]], volumes[name]) for name in names[1:]):
        raise SystemExit("the decoders disagree on the sample's HU volume")
    head = envelope("ich-edge-rle-decode/1", benchmark="rle_decode")  # the load average before the timed rounds
    for index in range(rounds):
        for name in names[index % len(names):] + names[: index % len(names)]:
            with decoder(name):
                wall, cpu, _ = read_once(series)
            wall_ms[name].append(wall)
            cpu_ms[name].append(cpu)
    rows = [
        {"decoder": n, "wall_ms_per_study": round(statistics.median(wall_ms[n]), 2),
         "cpu_ms_per_study": round(statistics.median(cpu_ms[n]), 2),
         "wall_ms_min": round(min(wall_ms[n]), 2)}
        for n in names
    ]
    for row in rows:
        row["ratio_wall_vs_pydicom_numpy"] = round(rows[0]["wall_ms_per_study"] / row["wall_ms_per_study"], 2)
        row["ratio_cpu_vs_pydicom_numpy"] = round(rows[0]["cpu_ms_per_study"] / row["cpu_ms_per_study"], 2)
    ratio_wall, ratio_cpu = rows[-1]["ratio_wall_vs_pydicom_numpy"], rows[-1]["ratio_cpu_vs_pydicom_numpy"]
    return {
        **head,
        "sample": str(folder.relative_to(REPO)) if folder.is_relative_to(REPO) else folder.name,
        "transfer_syntax": syntax.name,
        "slices": len(volumes[names[0]]),
        "rounds": rounds,
        "what": "predict's read stage: series.load() after find_series (decode + HU), median over rounds",
        "results": rows,
        "ratio_wall": round(ratio_wall, 2),
        "ratio_cpu": round(ratio_cpu, 2),
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio_wall >= GOAL_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    from ich_edge.runtime.bench.envelope import shown, write_results

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dicom", type=Path, default=SAMPLE, help="an RLE series (default: the golden sample)")
    parser.add_argument("--rounds", type=int, default=15, help="timed reads per decoder (default 15)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    result = run(args.dicom.resolve(), args.rounds)
    print(f"{result['slices']} slices {result['transfer_syntax']}, {args.rounds} rounds, median per study "
          f"(load average {result['load_average_start_end'][0][0]:.2f})")
    for row in result["results"]:
        print(f"  {row['decoder']:<16} wall {row['wall_ms_per_study']:8.2f} ms  cpu {row['cpu_ms_per_study']:8.2f} ms  "
              f"ratio wall {row['ratio_wall_vs_pydicom_numpy']:5.2f}x cpu {row['ratio_cpu_vs_pydicom_numpy']:5.2f}x")
    print(f"ratio pydicom-numpy / direct-rle: wall {result['ratio_wall']:.2f}x, cpu {result['ratio_cpu']:.2f}x "
          f"(goal >= {GOAL_RATIO:.0f}x)")
    for path in write_results(result, "rle_decode", args.results_dir, args.json):
        print(f"wrote {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
