"""The RSNA layout on disk: files, tags, label tables, determinism."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

import numpy as np
import pydicom
import pytest

from ich_edge import LABELS
from ich_edge.errors import OutputExistsError
from ich_edge.labels import read_rsna_csv, read_study_csv
from ich_edge.synth import SynthConfig, write_synth_set

from synth_helpers import SMALL

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_and_dicom_tags(small_set, small_config):
    out, records = small_set
    files = sorted((out / "dicom").glob("*.dcm"))
    assert {p.name for p in out.iterdir()} == {"dicom", "labels.csv", "studies.csv", "synth_config.json"}
    assert len(files) == sum(len(r.slice_ids) for r in records)
    series = defaultdict(list)
    for path in files:
        ds = pydicom.dcmread(path)
        assert path.stem == ds.SOPInstanceUID
        assert len(path.stem) == 12 and path.stem.startswith("ID_") and int(path.stem[3:], 16) >= 0
        assert ds.Modality == "CT" and ds.Rows == ds.Columns == small_config.matrix_px
        assert ds.PixelRepresentation == 1 and ds.BitsAllocated == 16 and float(ds.RescaleIntercept) == -1024.0
        assert ds.pixel_array.dtype == np.int16
        assert float(ds.SliceThickness) == 5.0
        assert [float(v) for v in ds.ImageOrientationPatient] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        assert 215.0 / 64 <= float(ds.PixelSpacing[0]) <= 250.0 / 64
        series[ds.SeriesInstanceUID].append((float(ds.ImagePositionPatient[2]), ds.StudyInstanceUID, path.stem))
    assert len(series) == small_config.studies
    for rec in records:
        positions = sorted(series[rec.series_uid])
        assert [sid for _, _, sid in positions] == list(rec.slice_ids)  # ordered by position
        assert {study for _, study, _ in positions} == {rec.study_uid}
        assert small_config.slices_min <= len(positions) <= small_config.slices_max
        gaps = np.diff([z for z, _, _ in positions])
        assert np.all(gaps > 2.0) and np.allclose(gaps, gaps[0], atol=1e-3)


def test_label_tables_are_consistent(small_set):
    out, records = small_set
    slices = read_rsna_csv(out / "labels.csv")
    rows = (out / "labels.csv").read_text().strip().splitlines()
    assert rows[0] == "ID,Label" and len(rows) - 1 == 6 * len(slices)
    assert set(slices) == {p.stem for p in (out / "dicom").glob("*.dcm")}
    for labels in slices.values():
        assert labels[-1] == labels[:-1].max()  # any == OR of the subtypes
    studies = read_study_csv(out / "studies.csv")
    assert len(studies) == len(records)
    for rec in records:
        stacked = np.stack([slices[sid] for sid in rec.slice_ids])
        np.testing.assert_array_equal(studies[rec.study_uid], stacked.max(axis=0))
    for path in (out / "labels.csv", out / "studies.csv", next((out / "dicom").glob("*.dcm"))):
        assert path.stat().st_mode & 0o044 == 0o044  # readable by others: a data set is shared
    summary = json.loads((out / "synth_config.json").read_text())
    assert summary["config"]["seed"] == 3 and summary["config"]["matrix_px"] == 64
    assert "mm^2" in summary["label_rule"]
    assert [s["study_uid"] for s in summary["studies"]] == [r.study_uid for r in records]


def test_same_seed_same_files_any_worker_count(tmp_path, small_set, small_config):
    out, _ = small_set
    again = tmp_path / "again"
    write_synth_set(SynthConfig(**{**small_config.__dict__, "workers": 2}), again)
    assert _digest(again / "dicom") == _digest(out / "dicom")
    assert (again / "labels.csv").read_bytes() == (out / "labels.csv").read_bytes()
    assert (again / "studies.csv").read_bytes() == (out / "studies.csv").read_bytes()
    assert (again / "synth_config.json").read_bytes() == (out / "synth_config.json").read_bytes()


def test_different_seed_different_studies(tmp_path, small_set):
    out, records = small_set
    other = write_synth_set(SynthConfig(studies=2, seed=4, **SMALL), tmp_path / "other")
    assert not {r.study_uid for r in other} & {r.study_uid for r in records}
    first = pydicom.dcmread(tmp_path / "other" / "dicom" / f"{other[0].slice_ids[10]}.dcm").pixel_array
    mine = pydicom.dcmread(out / "dicom" / f"{records[0].slice_ids[10]}.dcm").pixel_array
    assert not np.array_equal(first, mine)


def test_refuses_to_overwrite_without_force(tmp_path):
    config = SynthConfig(studies=1, seed=0, matrix_px=32, slices_min=4, slices_max=6, workers=1)
    write_synth_set(config, tmp_path)
    with pytest.raises(OutputExistsError, match="--force"):
        write_synth_set(config, tmp_path)
    records = write_synth_set(config, tmp_path, force=True)
    assert len(list((tmp_path / "dicom").glob("*.dcm"))) == len(records[0].slice_ids)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_slice_count_respects_range(tmp_path):
    config = SynthConfig(studies=3, seed=1, matrix_px=32, slices_min=6, slices_max=8, workers=1)
    records = write_synth_set(config, tmp_path)
    assert all(6 <= len(r.slice_ids) <= 8 for r in records)
    assert read_rsna_csv(tmp_path / "labels.csv").keys() == {s for r in records for s in r.slice_ids}
    assert LABELS[-1] == "any"
