"""DICOM-to-model-input throughput: ich-edge's reader against bare pydicom, in one run.

Writes N uncompressed int16 512x512 CT slices (RSNA conventions, one series) to a
temporary folder with :mod:`ich_edge.dicom.write`, then times, interleaved and repeated:

* ``pydicom``: ``pydicom.dcmread(f).pixel_array`` (decoded stored values, nothing more);
* ``read_hu+preprocess``: ``Preprocess()(read_hu(f))``, i.e. read, HU, padding to air,
  resize and three windows to the uint8 model input;
* ``find_series+load``: the whole path a caller takes on a folder: group and sort the
  series from headers (``find_series``), then ``series.load(Preprocess())``.

Per-slice milliseconds are the median over repeats; ratios are against ``pydicom``.
Goal: ``read_hu+preprocess`` at most 1.5x ``pydicom``.

    python benchmarks/dicom_throughput.py --slices 200 --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def _pydicom(paths, folder):
    for path in paths:
        pydicom.dcmread(path).pixel_array


def _read_hu_preprocess(paths, folder, preprocess=Preprocess()):
    for path in paths:
        preprocess(read_hu(path))


def _find_series_load(paths, folder, preprocess=Preprocess()):
    (series,) = find_series(folder).series
    series.load(preprocess)


METHODS = {
    "pydicom": (_pydicom, "pydicom.dcmread(f).pixel_array"),
    "read_hu+preprocess": (_read_hu_preprocess, "Preprocess()(read_hu(f)): read, HU, resize, 3 windows, uint8"),
    "find_series+load": (_find_series_load, "find_series(folder) then series.load(Preprocess())"),
}


def run(num_slices: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ich-edge-bench-") as tmp:
        folder = Path(tmp)
        paths = write_series(folder, num_slices)
        for function, _ in METHODS.values():  # warm-up: page cache, imports, lru caches
            function(paths, folder)
        times_ms = {name: [] for name in METHODS}
        names = list(METHODS)
        for repeat in range(repeats):
            # alternate the order so that no method always runs first
            for name in names if repeat % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                METHODS[name][0](paths, folder)
                times_ms[name].append((time.perf_counter() - start) * 1e3 / num_slices)
    baseline = statistics.median(times_ms["pydicom"])
    rows = []
    for name, (_, what) in METHODS.items():
        median = statistics.median(times_ms[name])
        rows.append(
            {
                "method": name,
                "what": what,
                "ms_per_slice": round(median, 4),
                "ms_per_slice_min": round(min(times_ms[name]), 4),
                "ratio_vs_pydicom": round(median / baseline, 3),
            }
        )
    return {
        "benchmark": "dicom_throughput",
        "num_slices": num_slices,
        "slice_shape": [512, 512],
        "repeats": repeats,
        "python": sys.version.split()[0],
        "pydicom": pydicom.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "results": rows,
    }


def format_rows(result: dict) -> str:
    lines = [f"{'method':<20} {'ms/slice':>9} {'min':>8} {'ratio':>6}"]
    for row in result["results"]:
        timings = f"{row['ms_per_slice']:>9.3f} {row['ms_per_slice_min']:>8.3f} {row['ratio_vs_pydicom']:>6.2f}"
        lines.append(f"{row['method']:<20} {timings}")
    return "\n".join(lines)


def _write_json_atomic(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=200, help="slices to write and read (default 200)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per method (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if args.slices < 2 or args.repeats < 1:
        parser.error("--slices must be >= 2 and --repeats >= 1")
    result = run(args.slices, args.repeats)
    print(f"{args.slices} slices 512x512 int16, {args.repeats} repeats, median per slice")
    print(format_rows(result))
    if args.json is not None:
        _write_json_atomic(result, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
