"""Predict says what it could not see: gaps, a single slice, the skull base alone, no positions.

The rule (ich_edge.runtime.predict's docstring): a series whose predicted slices cover under
100 mm along the slice axis, fewer slices than one model window, a gap (> 1.5 x the median
spacing, the gap rule inspect uses) or unknown positions is INCOMPLETE instead of NEGATIVE;
a POSITIVE stays POSITIVE and carries the warning. Tiny hand-built model (window 4), series
of 32 slices 5 mm apart (160 mm, a whole head) and parts of them.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from ich_edge.cli import main
from ich_edge.dicom.write import SliceGeometry, build_ct_dataset, write_dataset_atomic
from ich_edge.runtime import predict
from ich_edge.runtime.completeness import MAX_SLICE_SPACING_MM, MIN_HEAD_EXTENT_MM
from phantom_slices import round_head_hu

SIZE_PX, WINDOW, SPACING_MM, HEAD_SLICES = 16, 4, 5.0, 32


def _tiny():
    spec = importlib.util.spec_from_file_location("tiny_app_model", Path(__file__).parents[1] / "tiny_app_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.tflite"
    path.write_bytes(_tiny().tiny_model_bytes(size_px=SIZE_PX, window=WINDOW, stride=2))
    return predict.load_model(path, num_threads=1)


def write_head(folder: Path, keep, bright: bool = False, positions: bool = True, series_uid: str = "1.2.3.50") -> Path:
    """Slices ``keep`` (indices into a 32-slice, 160 mm head, bottom = 0) of one series."""
    folder.mkdir(parents=True)
    for k in keep:
        ds = build_ct_dataset(
            round_head_hu(bright),
            sop_instance_uid=f"ID_{series_uid.replace('.', '')}{k:04d}",
            series_uid=series_uid,
            study_uid="1.2.3",
            geometry=SliceGeometry(position_mm=(0.0, 0.0, -80.0 + SPACING_MM * k)),
            instance_number=k + 1,
        )
        if not positions:
            del ds.ImagePositionPatient
        write_dataset_atomic(ds, folder / f"slice_{k:02d}.dcm")
    return folder


def _one(model, folder):
    result = predict.predict_path(model, folder)
    (series,) = result.series
    return series, predict.triage(series, result.points), predict.triage_line(series, result.points)


def test_a_whole_head_is_a_plain_negative(model, tmp_path):
    series, verdict, line = _one(model, write_head(tmp_path / "whole", range(HEAD_SLICES)))
    assert verdict.verdict == "NEGATIVE" and line.startswith("NEGATIVE  any ")
    assert "not a negative" not in line and series.problems == []
    assert series.coverage.complete and series.coverage.extent_mm == pytest.approx(HEAD_SLICES * SPACING_MM)


def test_sixteen_missing_middle_slices_make_a_negative_incomplete(model, tmp_path):
    keep = [*range(8), *range(24, HEAD_SLICES)]  # 16 middle slices removed: an 85 mm step
    series, verdict, line = _one(model, write_head(tmp_path / "gap", keep))
    assert verdict.verdict == "INCOMPLETE", line
    assert line.startswith("INCOMPLETE  any ") and "not a negative: a 85.0 mm gap between slices 8 and 9" in line
    assert "about 16 slices missing" in line
    # The gap problem is the one inspect reports (ich_edge.dicom.series), stated once.
    gaps = [p for p in series.problems if "gap" in p]
    assert gaps == ["gap of 85.00 mm between slice_07.dcm and slice_24.dcm (median spacing 5.00 mm): slices missing?"]
    assert series.coverage.largest_gap_mm == pytest.approx(85.0)
    assert series.coverage.extent_mm == pytest.approx(160.0)  # the extent alone would have passed


def test_slices_fifteen_mm_apart_make_a_negative_incomplete(model, tmp_path):
    """Every third slice of the head: 150 mm covered, no gap, but 10 mm of head unseen between slices."""
    series, verdict, line = _one(model, write_head(tmp_path / "sparse", range(0, HEAD_SLICES, 3)))
    assert verdict.verdict == "INCOMPLETE", line
    assert f"slices 15.0 mm apart, more than {MAX_SLICE_SPACING_MM:.0f} mm: the head between them was not seen" in line
    assert series.coverage.spacing_mm == pytest.approx(15.0) and series.coverage.extent_mm >= MIN_HEAD_EXTENT_MM
    series, verdict, line = _one(model, write_head(tmp_path / "ten", range(0, HEAD_SLICES, 2)))  # 10 mm: judged
    assert verdict.verdict == "NEGATIVE", line


def test_a_single_slice_is_incomplete(model, tmp_path):
    series, verdict, line = _one(model, write_head(tmp_path / "one", [16]))
    assert verdict.verdict == "INCOMPLETE"
    assert "1 slice, fewer than one window of the model (4)" in line
    assert f"under the {MIN_HEAD_EXTENT_MM:.0f} mm a negative needs" in line
    assert len(series.problems) == 2


def test_the_skull_base_alone_is_incomplete(model, tmp_path):
    series, verdict, line = _one(model, write_head(tmp_path / "base", range(8)))
    assert verdict.verdict == "INCOMPLETE"
    assert "covers 40 mm along the slice axis" in line and "fewer than one window" not in line
    assert series.coverage.extent_mm == pytest.approx(40.0)


def test_a_positive_on_part_of_the_head_stays_positive_with_the_warning(model, tmp_path):
    series, verdict, line = _one(model, write_head(tmp_path / "base_bleed", range(8), bright=True))
    assert verdict.verdict == "POSITIVE" and verdict.positive
    assert line.startswith("POSITIVE  any ") and "| coverage incomplete: covers 40 mm" in line


def test_unknown_positions_are_incomplete(model, tmp_path):
    series, verdict, line = _one(model, write_head(tmp_path / "nopos", range(HEAD_SLICES), positions=False))
    assert verdict.verdict == "INCOMPLETE" and "slice positions (0020,0032) missing" in line
    assert series.coverage.extent_mm is None


def test_a_slice_dropped_while_decoding_leaves_a_gap_the_scan_did_not_see(model, tmp_path):
    folder = write_head(tmp_path / "dropped", range(HEAD_SLICES))
    broken = folder / "slice_16.dcm"
    broken.write_bytes(broken.read_bytes()[:-600])  # pixel data cut short: dropped on load
    series, verdict, line = _one(model, folder)
    assert series.num_slices == HEAD_SLICES - 1 and verdict.verdict == "INCOMPLETE"
    assert "a 10.0 mm gap between slices 16 and 17" in line
    assert any("slice dropped" in p for p in series.problems)
    assert any(p.startswith("a 10.0 mm gap") for p in series.problems)  # said by coverage: the scan had no gap


def test_cli_json_carries_verdict_coverage_and_one_stderr_line_per_series(model, tmp_path, capsys):
    folder = tmp_path / "mixed"
    write_head(folder / "a", range(HEAD_SLICES), series_uid="1.2.3.61")
    write_head(folder / "b", [*range(8), *range(24, HEAD_SLICES)], series_uid="1.2.3.62")
    write_head(folder / "c", range(8), series_uid="1.2.3.63")
    assert main(["predict", "--model", str(model.path), "--dicom", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    reports = {r["series_uid"]: r for r in json.loads(captured.out)}
    assert {uid: r["verdict"] for uid, r in reports.items()} == {
        "1.2.3.61": "NEGATIVE", "1.2.3.62": "INCOMPLETE", "1.2.3.63": "INCOMPLETE"
    }
    assert reports["1.2.3.61"]["problems"] == [] and reports["1.2.3.61"]["coverage"]["complete"] is True
    gap = reports["1.2.3.62"]
    assert any("gap of 85.00 mm" in p for p in gap["problems"])
    assert gap["coverage"]["complete"] is False and gap["coverage"]["largest_gap_mm"] == 85.0
    assert reports["1.2.3.63"]["coverage"]["extent_mm"] == 40.0
    assert reports["1.2.3.63"]["triage"].startswith("INCOMPLETE")
    warnings = [line for line in captured.err.splitlines() if line.startswith("ich-edge: warning: series ")]
    assert len(warnings) == 2  # one line per series with problems, none for the whole head
    assert any("1.2.3.62: INCOMPLETE; 1 problem: gap of 85.00 mm" in line for line in warnings)
    assert any("1.2.3.63: INCOMPLETE; 1 problem: covers 40 mm" in line for line in warnings)


def test_cli_text_shows_incomplete(model, tmp_path, capsys):
    folder = write_head(tmp_path / "one", [3])
    assert main(["predict", "--model", str(model.path), "--dicom", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "\nINCOMPLETE  any " in captured.out and "NEGATIVE" not in captured.out
    assert captured.err.count("ich-edge: warning: series 1/1 1.2.3.50: INCOMPLETE; 2 problems") == 1


def test_duplicate_positions_and_mixed_studies_reach_the_json(model, tmp_path, capsys):
    """The problems inspect reports for a series are predict's too (one owner: ich_edge.dicom.series)."""
    folder = write_head(tmp_path / "odd", range(HEAD_SLICES))
    for name, study_uid, z_mm in (("dup", "1.2.3", -80.0 + SPACING_MM * 5), ("other_study", "1.2.9", 80.0)):
        ds = build_ct_dataset(
            round_head_hu(False), sop_instance_uid=f"ID_{name}", series_uid="1.2.3.50", study_uid=study_uid,
            geometry=SliceGeometry(position_mm=(0.0, 0.0, z_mm)), instance_number=99,
        )
        write_dataset_atomic(ds, folder / f"{name}.dcm")
    assert main(["inspect", "--dicom", str(folder), "--json"]) == 0
    (inspected,) = json.loads(capsys.readouterr().out)
    assert main(["predict", "--model", str(model.path), "--dicom", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    (report,) = json.loads(captured.out)
    assert any("same position as slice_05.dcm" in p for p in report["problems"])
    assert any("spans 2 (0020,000D) Study Instance UIDs" in p for p in report["problems"])
    assert set(inspected["problems"]) <= set(report["problems"])  # nothing inspect says is dropped
    assert report["verdict"] == "NEGATIVE"  # neither problem hides part of the head
    (line,) = [line for line in captured.err.splitlines() if line.startswith("ich-edge: warning: series")]
    assert "same position" in line and "Study Instance UIDs" in line
