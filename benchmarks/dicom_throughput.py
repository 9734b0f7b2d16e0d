"""DICOM-to-model-input throughput: ich-edge's reader against bare pydicom, in one run.

Writes N uncompressed int16 512x512 CT slices (RSNA conventions, one series) to a
temporary folder with :mod:`ich_edge.dicom.write`, then times, interleaved and repeated:

* ``pydicom``: ``pydicom.dcmread(f).pixel_array`` (decoded stored values, nothing more);
* ``read_hu+preprocess``: ``Preprocess()(read_hu(f))``, i.e. read, HU, padding to air,
  resize and three windows to the uint8 model input;
* ``find_series+load``: the whole path a caller takes on a folder: group and sort the
  series from headers (``find_series``), then ``series.load(Preprocess())``.

The two per-slice methods alternate chunk by chunk (25 files), so that other processes on a
shared machine slow both alike. Wall time and process CPU time are both reported (CPU time
is what contention does not inflate); each is the median over repeats, per slice, and the
ratios are against ``pydicom``. Goal: ``read_hu+preprocess`` at most 1.5x ``pydicom``.

    python benchmarks/dicom_throughput.py --slices 200 --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from ich_edge.dicom import find_series, read_hu
from ich_edge.dicom.write import SliceGeometry, build_ct_dataset, write_dataset_atomic
from ich_edge.transforms import Preprocess


def write_series(folder: Path, num_slices: int, size_px: int = 512, seed: int = 0) -> list[Path]:
    """A head-like phantom series: air, a 7 mm skull ring, brain with noise; RSNA file names."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size_px, :size_px]
    radius = np.hypot(yy - size_px / 2, xx - size_px / 2) * 0.45
    paths = []
    for index in range(num_slices):
        hu = np.full((size_px, size_px), -1024.0)
        hu[radius < 90] = 1000.0
        hu[radius < 83] = 30.0 + rng.normal(0.0, 5.0, size=(radius < 83).sum())
        sop = f"ID_{rng.integers(0, 16**9):09x}"
        ds = build_ct_dataset(
            hu,
            sop_instance_uid=sop,
            series_uid="1.2.826.0.1.3680043.10.1",
            study_uid="1.2.826.0.1.3680043.10.2",
            geometry=SliceGeometry(position_mm=(-115.0, -115.0, 5.0 * index)),
            instance_number=num_slices - index,
        )
        path = folder / f"{sop}.dcm"
        write_dataset_atomic(ds, path)
        paths.append(path)
    return paths


def _pydicom(paths):
    for path in paths:
        pydicom.dcmread(path).pixel_array


def _read_hu_preprocess(paths, preprocess=Preprocess()):
    for path in paths:
        preprocess(read_hu(path))


def _find_series_load(folder, preprocess=Preprocess()):
    (series,) = find_series(folder).series
    series.load(preprocess)


#: Per-slice methods, timed chunk by chunk in alternation so that load from other
#: processes hits both alike.
PER_SLICE = {
    "pydicom": (_pydicom, "pydicom.dcmread(f).pixel_array"),
    "read_hu+preprocess": (_read_hu_preprocess, "Preprocess()(read_hu(f)): read, HU, resize, 3 windows, uint8"),
}
WHOLE_FOLDER = {
    "find_series+load": (_find_series_load, "find_series(folder) then series.load(Preprocess())"),
}
CHUNK_SLICES = 25


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def run(num_slices: int, repeats: int) -> dict:
    from ich_edge.runtime.bench.envelope import envelope

    head = envelope("ich-edge-dicom-throughput/1", benchmark="dicom_throughput")  # the load average before the work
    names = [*PER_SLICE, *WHOLE_FOLDER]
    wall_ms = {name: [] for name in names}
    cpu_ms = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="ich-edge-bench-") as tmp:
        folder = Path(tmp)
        paths = write_series(folder, num_slices)
        chunks = [paths[i : i + CHUNK_SLICES] for i in range(0, len(paths), CHUNK_SLICES)]
        for function, _ in PER_SLICE.values():  # warm-up: page cache, imports, lru caches
            function(paths)
        _find_series_load(folder)
        for repeat in range(repeats):
            totals = {name: [0.0, 0.0] for name in PER_SLICE}
            for index, chunk in enumerate(chunks):
                order = list(PER_SLICE) if (repeat + index) % 2 == 0 else list(PER_SLICE)[::-1]
                for name in order:
                    wall, cpu = _clock()
                    PER_SLICE[name][0](chunk)
                    end_wall, end_cpu = _clock()
                    totals[name][0] += end_wall - wall
                    totals[name][1] += end_cpu - cpu
            for name, (wall, cpu) in totals.items():
                wall_ms[name].append(wall * 1e3 / num_slices)
                cpu_ms[name].append(cpu * 1e3 / num_slices)
            for name, (function, _) in WHOLE_FOLDER.items():
                wall, cpu = _clock()
                function(folder)
                end_wall, end_cpu = _clock()
                wall_ms[name].append((end_wall - wall) * 1e3 / num_slices)
                cpu_ms[name].append((end_cpu - cpu) * 1e3 / num_slices)
    base_wall, base_cpu = statistics.median(wall_ms["pydicom"]), statistics.median(cpu_ms["pydicom"])
    rows = []
    for name in names:
        what = {**PER_SLICE, **WHOLE_FOLDER}[name][1]
        wall, cpu = statistics.median(wall_ms[name]), statistics.median(cpu_ms[name])
        rows.append(
            {
                "method": name,
                "what": what,
                "wall_ms_per_slice": round(wall, 4),
                "cpu_ms_per_slice": round(cpu, 4),
                "ratio_wall": round(wall / base_wall, 3),
                "ratio_cpu": round(cpu / base_cpu, 3),
            }
        )
    return {
        **head,
        "num_slices": num_slices,
        "slice_shape": [512, 512],
        "repeats": repeats,
        "statistic": "median over repeats of per-slice time; ratios against pydicom",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
        "pydicom": pydicom.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "results": rows,
    }


def format_rows(result: dict) -> str:
    lines = [f"{'method':<20} {'wall ms':>8} {'cpu ms':>8} {'ratio wall':>11} {'ratio cpu':>10}"]
    for row in result["results"]:
        timings = f"{row['wall_ms_per_slice']:>8.3f} {row['cpu_ms_per_slice']:>8.3f}"
        lines.append(f"{row['method']:<20} {timings} {row['ratio_wall']:>11.2f} {row['ratio_cpu']:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=200, help="slices to write and read (default 200)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per method (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if args.slices < 2 or args.repeats < 1:
        parser.error("--slices must be >= 2 and --repeats >= 1")
    result = run(args.slices, args.repeats)
    print(
        f"{args.slices} slices 512x512 int16, {args.repeats} repeats, median per slice "
        f"(load average {result['load_average_1min']})"
    )
    print(format_rows(result))
    if args.json is not None:
        from ich_edge.runtime.bench.envelope import write_results

        write_results(result, "dicom_throughput", None, args.json)  # the user's own file
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
