"""prepare at RSNA scale: the shared header manifest, the series filter, patient pseudonyms."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from head_hu import random_head_hu

from ich_edge.ingest.cache import Cache
from ich_edge.dicom import patient_pseudonym, read_slice_info
from ich_edge.dicom.write import SliceGeometry, build_ct_dataset, write_dataset_atomic
from ich_edge.dicom.privacy import KEY_FILE, keyed_pseudonym, patient_key
from ich_edge.errors import CacheError, ConfigError
from ich_edge.ingest.prepare import SeriesFilter, default_workers, prepare
from ich_edge.ingest.scan_manifest import LOCK_FILE, MANIFEST_FILE
from ich_edge.synth import SynthConfig, write_synth_set
from ich_edge.transforms import PreprocessConfig

CONFIG = PreprocessConfig(input_size_px=32)
SYNTH = SynthConfig(studies=4, seed=3, matrix_px=64, slices_min=6, slices_max=8, workers=1)


@pytest.fixture(scope="module")
def repeat_scans(tmp_path_factory):
    """4 synthetic studies, two per made-up patient (SYNTH-3-000000, SYNTH-3-000001)."""
    out = tmp_path_factory.mktemp("repeat_scans")
    records = write_synth_set(SYNTH, out, studies_per_patient=2)
    return out, records


class CountingReads:
    """Counts header reads in this process (prepare with workers=1 reads headers here)."""

    def __init__(self, monkeypatch):
        import ich_edge.dicom.series as series_module

        self.count = 0
        original = series_module.read_slice_info

        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(series_module, "read_slice_info", counted)


def _write_axial(folder: Path, series_uid: str, num_slices: int, image_type=None, orientation=None, patient_id=None):
    rng = np.random.default_rng(abs(hash(series_uid)) % 2**32)
    for k in range(num_slices):
        geometry = SliceGeometry(position_mm=(0.0, 0.0, 5.0 * k))
        if orientation is not None:
            geometry = SliceGeometry(position_mm=(5.0 * k, 0.0, 0.0), orientation=orientation)
        ds = build_ct_dataset(
            random_head_hu(rng, (32, 32)), sop_instance_uid=f"ID_{series_uid[-3:]}{k:06x}",
            series_uid=series_uid, study_uid=series_uid + ".0", geometry=geometry, instance_number=k + 1,
            patient_id=patient_id or "SYNTHETIC",
        )
        if image_type is not None:
            ds.ImageType = image_type
        if patient_id == "":
            del ds.PatientID
        write_dataset_atomic(ds, folder / f"ID_{series_uid[-3:]}{k:06x}.dcm")


def test_patient_id_is_stored_as_a_pseudonym_never_as_itself(repeat_scans, tmp_path):
    out, records = repeat_scans
    prepare(out / "dicom", tmp_path / "cache", labels_csv=out / "labels.csv", preprocess=CONFIG, workers=1)
    cached = Cache.open(tmp_path / "cache").series()
    by_study = {s.study_uid: s.patient_uid for s in cached}
    key = patient_key(tmp_path / "cache")
    expected = {r.study_uid: keyed_pseudonym(key, patient_pseudonym(f"SYNTH-3-{r.index // 2:06d}")) for r in records}
    assert by_study == expected and len(set(by_study.values())) == 2
    public = {patient_pseudonym(f"SYNTH-3-{r.index // 2:06d}").encode() for r in records}  # the public-salt hash
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            assert b"SYNTH-" not in data, f"{path} holds a raw Patient ID"
            assert not any(digest in data for digest in public), f"{path} holds the public-salt hash of a Patient ID"


def test_the_pseudonym_is_keyed_per_cache_and_agreed_by_its_shards(repeat_scans, tmp_path):
    """Two caches of the same patients: other pseudonyms; shards (and resumed runs) of one cache: the same."""
    out, _ = repeat_scans
    pseudonyms = {}
    for name in ("a", "b"):
        for shard in ((0, 2), (1, 2)):
            prepare(out / "dicom", tmp_path / name, preprocess=CONFIG, workers=1, shard=shard)
        pseudonyms[name] = {s.study_uid: s.patient_uid for s in Cache.open(tmp_path / name).series()}
    a, b = pseudonyms["a"], pseudonyms["b"]
    assert sorted(a) == sorted(b) and len(a) == 4
    assert len(set(a.values())) == 2 and not set(a.values()) & set(b.values())  # same patients, unlinkable
    key_path = tmp_path / "a" / KEY_FILE
    assert key_path.stat().st_mode & 0o777 == 0o600 and len(bytes.fromhex(key_path.read_text())) == 32
    # one patient, two studies, each study in either shard: the shards agree because they share the key
    by_patient = {}
    for study, patient in a.items():
        by_patient.setdefault(patient, []).append(study)
    assert sorted(len(v) for v in by_patient.values()) == [2, 2]
    # a user-given key (another cache's) makes two caches agree, e.g. a test cache with its training cache
    prepare(out / "dicom", tmp_path / "c", preprocess=CONFIG, workers=1, patient_key_file=key_path)
    assert {s.study_uid: s.patient_uid for s in Cache.open(tmp_path / "c").series()} == a
    with pytest.raises(CacheError, match="keyed with its own"):
        prepare(out / "dicom", tmp_path / "b", preprocess=CONFIG, workers=1, patient_key_file=key_path)


def test_a_cache_prepared_with_public_salt_pseudonyms_is_not_extended(repeat_scans, tmp_path):
    out, _ = repeat_scans
    prepare(out / "dicom", tmp_path / "old", preprocess=CONFIG, workers=1, shard=(0, 2))
    (tmp_path / "old" / KEY_FILE).unlink()  # as a cache of the old ich-edge has none
    with pytest.raises(CacheError, match="before patient pseudonyms were keyed"):
        prepare(out / "dicom", tmp_path / "old", preprocess=CONFIG, workers=1, shard=(1, 2))


def test_synthetic_sets_of_other_seeds_hold_other_patients(tmp_path):
    from ich_edge.synth.writer import synthetic_patient_id

    assert synthetic_patient_id(1, 0) != synthetic_patient_id(2, 0)
    assert synthetic_patient_id(1, 4, studies_per_patient=2) == synthetic_patient_id(1, 5, studies_per_patient=2)
    with pytest.raises(ConfigError, match="studies_per_patient"):
        write_synth_set(SYNTH, tmp_path / "bad", studies_per_patient=0)
    assert not (tmp_path / "bad").exists()


def test_missing_patient_id_falls_back_to_the_study_with_a_problem(tmp_path):
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    _write_axial(dicom, "1.2.826.0.1.3680043.8.498.901", 4, patient_id="")
    summary = prepare(dicom, tmp_path / "cache", preprocess=CONFIG, workers=1)
    (item,) = Cache.open(tmp_path / "cache").series()
    assert item.patient_uid == item.study_uid == "1.2.826.0.1.3680043.8.498.901.0"
    assert any("Patient ID" in p.reason for p in summary.problems)
    assert read_slice_info(next(dicom.iterdir())).patient_uid is None


def test_second_shard_reads_no_header(repeat_scans, tmp_path, monkeypatch):
    out, _ = repeat_scans
    reads = CountingReads(monkeypatch)
    num_files = len(list((out / "dicom").iterdir()))
    first = prepare(out / "dicom", tmp_path / "cache", preprocess=CONFIG, workers=1, shard=(0, 2))
    assert reads.count == num_files and first.headers_read == num_files
    second = prepare(out / "dicom", tmp_path / "cache", preprocess=CONFIG, workers=1, shard=(1, 2))
    assert reads.count == num_files and second.headers_read == 0  # the manifest, not the files
    assert first.prepared_series + second.prepared_series == SYNTH.studies
    whole = prepare(out / "dicom", tmp_path / "whole", preprocess=CONFIG, workers=1)
    a = {s.series_uid: s for s in Cache.open(tmp_path / "cache").series()}
    b = {s.series_uid: s for s in Cache.open(tmp_path / "whole").series()}
    assert a.keys() == b.keys() and whole.prepared_series == SYNTH.studies
    for uid in a:
        assert a[uid].slice_ids == b[uid].slice_ids
        np.testing.assert_array_equal(a[uid].images, b[uid].images)


def test_manifest_is_redone_when_the_files_change(repeat_scans, tmp_path, monkeypatch):
    out, _ = repeat_scans
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    for path in sorted((out / "dicom").iterdir())[:-1]:
        os.link(path, dicom / path.name)
    prepare(dicom, tmp_path / "cache", preprocess=CONFIG, workers=1)
    os.link(sorted((out / "dicom").iterdir())[-1], dicom / sorted((out / "dicom").iterdir())[-1].name)
    reads = CountingReads(monkeypatch)
    again = prepare(dicom, tmp_path / "cache", preprocess=CONFIG, workers=1)
    assert again.headers_read == reads.count == len(list(dicom.iterdir()))


def test_a_shard_waits_for_the_one_holding_the_lock(repeat_scans, tmp_path, monkeypatch):
    """Two concurrent shards: the second waits for the first's manifest instead of reading headers."""
    out, _ = repeat_scans
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / LOCK_FILE).write_text("another shard\n")  # a live holder ...
    monkeypatch.setattr("ich_edge.ingest.scan_manifest._POLL_S", 0.05)
    waits = []
    result = {}

    def second_shard():
        result["summary"] = prepare(out / "dicom", cache, preprocess=CONFIG, workers=1, shard=(1, 2), log=waits.append)

    thread = threading.Thread(target=second_shard)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive() and waits and "waiting" in waits[0]
    # ... that finishes its scan: prepare with the lock released writes the manifest
    (cache / LOCK_FILE).unlink()
    thread.join(timeout=60)
    assert result["summary"].prepared_series > 0
    assert (cache / MANIFEST_FILE).is_file() and not (cache / LOCK_FILE).exists()


def test_a_stale_lock_is_taken_over(repeat_scans, tmp_path, monkeypatch):
    out, _ = repeat_scans
    cache = tmp_path / "cache"
    cache.mkdir()
    lock = cache / LOCK_FILE
    lock.write_text("a shard that died\n")
    old = time.time() - 3600
    os.utime(lock, (old, old))
    monkeypatch.setattr("ich_edge.ingest.scan_manifest._POLL_S", 0.01)
    summary = prepare(out / "dicom", cache, preprocess=CONFIG, workers=1)
    assert summary.prepared_series == SYNTH.studies and summary.headers_read > 0 and not lock.exists()


def test_localizers_short_and_non_axial_series_are_left_out_with_reasons(tmp_path):
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    _write_axial(dicom, "1.2.826.0.1.3680043.8.498.911", 5)  # kept
    _write_axial(dicom, "1.2.826.0.1.3680043.8.498.912", 5, image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    _write_axial(dicom, "1.2.826.0.1.3680043.8.498.913", 2)
    _write_axial(dicom, "1.2.826.0.1.3680043.8.498.914", 5, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))  # sagittal
    summary = prepare(dicom, tmp_path / "cache", preprocess=CONFIG, workers=1)
    assert [s.series_uid for s in Cache.open(tmp_path / "cache").series()] == ["1.2.826.0.1.3680043.8.498.911"]
    reasons = {p.item: p.reason for p in summary.problems if p.reason.startswith("skipped: ")}
    assert "localizer" in reasons["1.2.826.0.1.3680043.8.498.912"] and "LOCALIZER" in reasons["1.2.826.0.1.3680043.8.498.912"]
    assert "2 slice(s), fewer than 3" in reasons["1.2.826.0.1.3680043.8.498.913"]
    assert "not axial: slice normal 90 deg" in reasons["1.2.826.0.1.3680043.8.498.914"]
    assert summary.skipped_series == 3
    report = json.loads(summary.problems_path.read_text())
    assert sum(p["reason"].startswith("skipped: ") for p in report["problems"]) == 3
    # a looser filter keeps them
    loose = prepare(dicom, tmp_path / "loose", preprocess=CONFIG, workers=1,
                    series_filter=SeriesFilter(min_slices=1, drop_localizers=False, max_tilt_deg=90.0,
                                                 max_axis_turn_deg=180.0))
    assert loose.prepared_series == 4


def test_series_filter_and_workers_defaults_validate():
    with pytest.raises(ConfigError, match="min_slices"):
        SeriesFilter(min_slices=0)
    with pytest.raises(ConfigError, match="max_tilt_deg"):
        SeriesFilter(max_tilt_deg=0.0)
    assert default_workers() == len(os.sched_getaffinity(0))


def test_scan_only_writes_the_manifest_and_prepare_then_reads_no_header(repeat_scans, tmp_path, monkeypatch, capsys):
    from ich_edge.cli import main

    out, _ = repeat_scans
    cache = tmp_path / "cache"
    assert main(["prepare", "--dicom", str(out / "dicom"), "--out", str(cache), "--scan-only", "--workers", "1"]) == 0
    line = capsys.readouterr().out
    assert "CT series" in line and (cache / MANIFEST_FILE).is_file() and not (cache / "preprocess.json").exists()
    reads = CountingReads(monkeypatch)
    assert main(["prepare", "--dicom", str(out / "dicom"), "--out", str(cache), "--input-size-px", "32", "--workers", "1"]) == 0
    assert reads.count == 0 and f"prepared {SYNTH.studies} series" in capsys.readouterr().out
