"""``ich-edge inspect``: the report schema, the table, and one-line errors on bad input."""

from __future__ import annotations

import json
import re

import pytest
from dicom_helpers import SERIES_UID, STUDY_UID, write_series

from ich_edge.cli import main
from ich_edge.errors import SeriesError
from ich_edge.dicom import find_series
from ich_edge.ingest.inspect import REPORT_KEYS, format_table, inspect_scan

def _inspect(path):
    return inspect_scan(find_series(path))


IDENTIFIERS = ("Phantom", "SYNTHETIC")  # what write.py puts in PatientName / PatientID


def _check_report_schema(report: dict) -> None:
    assert tuple(report) == REPORT_KEYS
    assert isinstance(report["series_uid"], str) and isinstance(report["study_uid"], str)
    assert report["modality"] == "CT"
    assert isinstance(report["num_slices"], int) and report["num_slices"] == len(report["slice_ids"])
    assert all(isinstance(sid, str) for sid in report["slice_ids"])
    assert isinstance(report["slice_spacing_mm"], float)
    assert isinstance(report["pixel_spacing_mm"], list) and len(report["pixel_spacing_mm"]) == 2
    assert isinstance(report["rows"], int) and isinstance(report["columns"], int)
    assert isinstance(report["hu_min"], float) and isinstance(report["hu_max"], float)
    assert report["sort_method"] in ("position", "instance_number", "file_order")
    assert isinstance(report["problems"], list)


def test_inspect_path_reports_geometry_and_hu_range(series_dir):
    (report,) = _inspect(series_dir)
    _check_report_schema(report)
    assert report["series_uid"] == SERIES_UID and report["study_uid"] == STUDY_UID
    assert report["num_slices"] == 4 and (report["rows"], report["columns"]) == (32, 32)
    assert report["slice_spacing_mm"] == pytest.approx(5.0)
    assert report["pixel_spacing_mm"] == [7.2, 7.2]
    assert (report["hu_min"], report["hu_max"]) == (-1024.0, 1000.0)
    assert report["sort_method"] == "position" and report["problems"] == []


def test_cli_json(series_dir, capsys):
    assert main(["inspect", "--dicom", str(series_dir), "--json"]) == 0
    captured = capsys.readouterr()
    reports = json.loads(captured.out)
    assert isinstance(reports, list) and len(reports) == 1
    _check_report_schema(reports[0])
    assert reports[0]["slice_ids"] == _inspect(series_dir)[0]["slice_ids"]
    assert captured.err == ""
    assert not any(name in captured.out for name in IDENTIFIERS)


def test_cli_table_lists_series_then_problems(tmp_path, capsys):
    paths = write_series(tmp_path)
    paths[3].write_bytes(paths[3].read_bytes()[:-64])
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["inspect", "--dicom", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    columns = ["series_uid", "slices", "spacing_mm", "pixel_mm", "matrix", "hu_min", "hu_max", "sort", "problems"]
    assert header.split() == columns
    assert row.split() == [SERIES_UID, "3", "5", "7.2x7.2", "32x32", "-1024", "1000", "position", "1"]
    assert "problems (2):" in out
    assert f"series {SERIES_UID}: {paths[3].name}: pixel data truncated" in out
    assert "notes.txt: not a DICOM file" in out
    assert not any(name in out for name in IDENTIFIERS)


def test_json_sends_skipped_files_to_stderr(tmp_path, capsys):
    write_series(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["inspect", "--json", "--dicom", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 1
    assert captured.err.startswith("ich-edge: skipped: notes.txt: not a DICOM file")


def _write_mr(tmp_path):
    def to_mr(ds, k):
        ds.Modality = "MR"

    return write_series(tmp_path / "mr", edit=to_mr)[0]


def _write_truncated(tmp_path):
    (path,) = write_series(tmp_path / "trunc", num_slices=1)
    path.write_bytes(path.read_bytes()[:-100])
    return path


def _write_no_pixels(tmp_path):
    def drop(ds, k):
        del ds.PixelData

    return write_series(tmp_path / "nopix", num_slices=1, edit=drop)[0]


def _write_text(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("ID,Label\n")
    return path


def _empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "no such file or folder"),
        (_empty_folder, "the folder holds no files"),
        (_write_text, "labels.csv: not a DICOM file"),
        (_write_mr, "no CT series; found MR"),
        (_write_truncated, "no usable slice .*pixel data truncated: 1948 of 2048 bytes"),
        (_write_no_pixels, r"no usable slice .*no \(7FE0,0010\) Pixel Data"),
    ],
)
def test_bad_input_gives_one_error_line_and_nonzero_exit(tmp_path, capsys, make, message):
    code = main(["inspect", "--dicom", str(make(tmp_path))])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code != 0
    assert err.startswith("ich-edge: error: ") and "\n" not in err, err
    assert re.search(message, err), err
    assert "Traceback" not in captured.err + captured.out


def test_inspect_scan_raises_when_no_series_decodes(tmp_path):
    _write_truncated(tmp_path)
    with pytest.raises(SeriesError, match="no usable slice"):
        _inspect(tmp_path / "trunc")


def test_a_broken_series_next_to_a_good_one_is_reported_not_fatal(tmp_path):
    write_series(tmp_path, series_uid="1.5.1")

    def drop(ds, k):
        del ds.PixelData

    write_series(tmp_path, series_uid="1.5.2", edit=drop, num_slices=2)
    good, bad = _inspect(tmp_path)
    assert good["hu_max"] == 1000.0
    assert bad["hu_min"] is None and bad["hu_max"] is None
    assert any("no usable slice" in p for p in bad["problems"])
    (bad_row,) = [line for line in format_table([good, bad]).splitlines() if line.startswith("1.5.2 ")]
    assert bad_row.split()[5:8] == ["-", "-", "position"]


def test_table_caps_the_problem_lines():
    report = {
        "series_uid": "1.2", "num_slices": 1, "slice_spacing_mm": None, "pixel_spacing_mm": None,
        "rows": 8, "columns": 8, "hu_min": 0.0, "hu_max": 1.0, "sort_method": "position",
        "problems": [f"p{i}" for i in range(10)],
    }
    table = format_table([report], ["scan problem"], max_problems=3)
    assert "problems (11):" in table
    assert "... and 8 more (use --json for all)" in table


def test_pydicom_warnings_are_folded_and_values_masked(tmp_path, capsys):
    paths = write_series(tmp_path, instance_numbers=[71, 72, 73, 74])
    for k, path in enumerate(paths):
        # (0020,0013) IS "7k" -> "7A", an invalid IS that pydicom warns about, quoting it.
        element = b"\x20\x00\x13\x00IS\x02\x00"
        data = path.read_bytes()
        assert data.count(element + f"7{k + 1}".encode()) == 1
        path.write_bytes(data.replace(element + f"7{k + 1}".encode(), element + b"7A"))
    assert main(["inspect", "--dicom", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    (note,) = [line for line in captured.out.splitlines() if "pydicom warned" in line]
    assert "Invalid value for VR IS: '...'" in note and "7A" not in note
