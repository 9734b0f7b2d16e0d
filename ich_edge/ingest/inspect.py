"""What ``ich-edge inspect`` reports about DICOM series: geometry, HU range and problems.

One dict per CT series (the ``--json`` schema), built from :func:`ich_edge.dicom.find_series`
and one pass over each series' pixels for the HU range. No patient identifiers are read
into the report: only UIDs, geometry and pixel statistics; quoted header values in problem
texts (pydicom quotes what it cannot parse) are masked by :mod:`ich_edge.dicom.privacy`.
"""

from __future__ import annotations

import numpy as np

from ich_edge.dicom import ScanResult, Series
from ich_edge.dicom.privacy import mask_all
from ich_edge.errors import SeriesError, UnreadableSeriesError
from ich_edge.ingest.series_filter import JUDGED

#: Keys of each series report, in output order.
REPORT_KEYS = (
    "series_uid",
    "study_uid",
    "modality",
    "num_slices",
    "slice_ids",
    "slice_spacing_mm",
    "pixel_spacing_mm",
    "rows",
    "columns",
    "hu_min",
    "hu_max",
    "sort_method",
    "problems",
)


def inspect_scan(scan: ScanResult) -> list[dict]:
    """One report per series of ``scan``, with keys :data:`REPORT_KEYS`.

    Reads every slice once for ``hu_min``/``hu_max`` (HU after padding is set to air);
    slices that fail to decode are dropped and listed in the series' ``problems``. What makes
    ``predict`` call a series UNREADABLE (the series rules of
    :data:`ich_edge.ingest.series_filter.JUDGED`, a mis-declared pixel module, implausible HU) is
    listed in its ``problems`` as ``UNREADABLE: <why>`` (HU range None when the pixels are
    not trusted).

    Raises
    ------
    SeriesError
        If no series has a single decodable slice (UNREADABLE series are reported, not raised).
    """
    reports, errors = [], []
    for series in scan.series:
        try:
            reports.append(series_report(series))
        except UnreadableSeriesError as err:
            unreadable = [f"UNREADABLE: {reason}" for reason in err.reasons]
            reports.append(_report(series, None, None, mask_all([*series.problems, *unreadable])))
        except SeriesError as err:
            errors.append(err)
            reports.append(_report(series, None, None, mask_all([*series.problems, str(err)])))
        reason = JUDGED.reason_to_skip(series)
        if reason is not None:
            reports[-1]["problems"].append(f"UNREADABLE: {reason} (prepare and predict leave such series out)")
    if errors and len(errors) == len(scan.series):
        raise errors[0]
    return reports


def series_report(series: Series) -> dict:
    """The report of one series; raises SeriesError if none of its slices decodes."""
    loaded = series.load(transform=_hu_range)
    hu_min = float(loaded.images[:, 0].min())
    hu_max = float(loaded.images[:, 1].max())
    report = _report(series, hu_min, hu_max, mask_all([*series.problems, *loaded.problems]))
    report["slice_ids"] = list(loaded.slice_ids)
    report["num_slices"] = len(loaded.slice_ids)
    return report


def _hu_range(hu: np.ndarray) -> np.ndarray:
    return np.array([hu.min(), hu.max()], dtype=np.float32)


def _report(series: Series, hu_min: float | None, hu_max: float | None, problems: list[str]) -> dict:
    return {
        "series_uid": series.series_uid,
        "study_uid": series.study_uid,
        "modality": series.modality,
        "num_slices": series.num_slices,
        "slice_ids": series.slice_ids,
        "slice_spacing_mm": series.slice_spacing_mm,
        "pixel_spacing_mm": list(series.pixel_spacing_mm) if series.pixel_spacing_mm else None,
        "rows": series.rows,
        "columns": series.columns,
        "hu_min": hu_min,
        "hu_max": hu_max,
        "sort_method": series.sort_method,
        "problems": list(problems),
    }


def format_table(reports: list[dict], scan_problems: list[str] = (), max_problems: int = 50) -> str:
    """An aligned text table, one row per series, followed by the problems.

    ``max_problems`` caps the problem lines printed (a count of the rest is shown).
    """
    header = ("series_uid", "slices", "spacing_mm", "pixel_mm", "matrix", "hu_min", "hu_max", "sort", "problems")
    rows = [header]
    for report in reports:
        rows.append(
            (
                report["series_uid"],
                str(report["num_slices"]),
                _number(report["slice_spacing_mm"]),
                "x".join(_number(v) for v in report["pixel_spacing_mm"]) if report["pixel_spacing_mm"] else "-",
                f"{report['rows']}x{report['columns']}",
                _number(report["hu_min"], "{:.0f}"),
                _number(report["hu_max"], "{:.0f}"),
                report["sort_method"],
                str(len(report["problems"])),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = {1, 2, 5, 6, 8}
    lines = []
    for row in rows:
        cells = (cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        lines.append("  ".join(cells).rstrip())
    problem_lines = [f"series {r['series_uid']}: {p}" for r in reports for p in r["problems"]]
    problem_lines += list(scan_problems)
    if problem_lines:
        lines += ["", f"problems ({len(problem_lines)}):"]
        lines += [f"  {line}" for line in problem_lines[:max_problems]]
        if len(problem_lines) > max_problems:
            lines.append(f"  ... and {len(problem_lines) - max_problems} more (use --json for all)")
    return "\n".join(lines)


def _number(value: float | None, fmt: str = "{:.3g}") -> str:
    return "-" if value is None else fmt.format(value)
