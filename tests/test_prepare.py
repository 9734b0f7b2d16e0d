"""``ich-edge prepare``: DICOM series -> prepared cache (tiny 4-slice 32x32 series)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.ingest.cache import Cache
from ich_edge.cli import main
from ich_edge.dicom.write import SliceGeometry, build_ct_dataset, write_dataset_atomic
from ich_edge.errors import CacheError, ConfigError, LabelsError, NoSeriesError
from ich_edge.labels import write_rsna_csv
from ich_edge.ingest.prepare import SeriesFilter, parse_shard, prepare, shard_of
from ich_edge.transforms import Preprocess, PreprocessConfig
from head_hu import random_head_hu
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

SIZE_PX = 32
SLICES = 4
CONFIG = PreprocessConfig(input_size_px=SIZE_PX)
# Three good series (two in one study), chosen so that shards 0/2 and 1/2 both get work.
GOOD = {
    "1.2.826.0.1.3680043.8.498.101": "1.2.826.0.1.3680043.8.498.1",
    "1.2.826.0.1.3680043.8.498.102": "1.2.826.0.1.3680043.8.498.1",
    "1.2.826.0.1.3680043.8.498.103": "1.2.826.0.1.3680043.8.498.2",
}
PREPARED = {*GOOD, "1.2.826.0.1.3680043.8.498.107"}
CORRUPT_SERIES = "1.2.826.0.1.3680043.8.498.104"  # no slice decodes: skipped when loaded
MR_SERIES = "1.2.826.0.1.3680043.8.498.105"
TRUNCATED_SERIES = "1.2.826.0.1.3680043.8.498.106"  # one slice, file cut short
PARTIAL_SERIES = "1.2.826.0.1.3680043.8.498.107"  # its second slice from the bottom does not decode


def _slice_hu(rng: np.random.Generator) -> np.ndarray:
    """Integer HU from air to dense bone in a head's mix (exact through int16 storage)."""
    return random_head_hu(rng, (SIZE_PX, SIZE_PX))


def _write_series(folder: Path, rng, names: set, series_uid: str, study_uid: str, modality="CT", corrupt=range(0)):
    """Write one 4-slice series; InstanceNumber runs top->bottom (disagrees with position).

    Slices whose index (from the bottom) is in ``corrupt`` get RLE pixel data that passes
    the header scan but does not decode. Returns ``[(slice_id, hu)]`` bottom to top.
    """
    slices = []
    for k in range(SLICES):
        while (slice_id := f"ID_{rng.integers(16**9):09x}") in names:
            pass
        names.add(slice_id)
        hu = _slice_hu(rng)
        ds = build_ct_dataset(
            hu,
            sop_instance_uid=slice_id,
            series_uid=series_uid,
            study_uid=study_uid,
            geometry=SliceGeometry(position_mm=(-60.0, -60.0, -20.0 + 5.0 * k)),
            instance_number=SLICES - k,
        )
        ds.Modality = modality
        if k in corrupt:
            ds.file_meta.TransferSyntaxUID = RLELossless
            ds.PixelData = encapsulate([b"\x01\x00\x00\x00\x40\x00\x00\x00" + bytes(56) + b"\xff" * 10])
        write_dataset_atomic(ds, folder / f"{slice_id}.dcm")
        slices.append((slice_id, hu))
    return slices


@pytest.fixture(scope="module")
def rsna(tmp_path_factory):
    """Flat RSNA-style folder of mixed series with random file names, plus an RSNA CSV."""
    root = tmp_path_factory.mktemp("rsna")
    dicom = root / "dicom"
    dicom.mkdir()
    rng = np.random.default_rng(7)
    names: set = set()
    truth = {}
    labels = {}
    for s, (series_uid, study_uid) in enumerate(GOOD.items()):
        slices = _write_series(dicom, rng, names, series_uid, study_uid)
        truth[series_uid] = slices
        for k, (slice_id, _) in enumerate(slices):
            row = np.zeros(len(LABELS), np.uint8)
            if s < 2:  # series 0 and 1: subtype k on the k-th slice from the bottom
                row[k] = 1
                row[-1] = 1
            labels[slice_id] = row
    corrupt = _write_series(dicom, rng, names, CORRUPT_SERIES, "1.2.826.0.1.3680043.8.498.3", corrupt=range(SLICES))
    partial = _write_series(dicom, rng, names, PARTIAL_SERIES, "1.2.826.0.1.3680043.8.498.5", corrupt=(1,))
    truth[PARTIAL_SERIES] = [partial[0], *partial[2:]]
    for k, (slice_id, _) in enumerate(corrupt + partial):
        labels[slice_id] = np.zeros(len(LABELS), np.uint8)
        labels[slice_id][[k % SLICES, -1]] = 1
    _write_series(dicom, rng, names, MR_SERIES, "1.2.826.0.1.3680043.8.498.4", modality="MR")
    (dicom / "ID_notdicom.dcm").write_bytes(b"this is not a DICOM file at all")
    lone = build_ct_dataset(
        _slice_hu(rng), sop_instance_uid="ID_truncated", series_uid=TRUNCATED_SERIES,
        study_uid="1.2.826.0.1.3680043.8.498.6", geometry=SliceGeometry(position_mm=(0.0, 0.0, 0.0)), instance_number=1,
    )
    write_dataset_atomic(lone, dicom / "ID_truncated.dcm")
    whole = (dicom / "ID_truncated.dcm").read_bytes()
    (dicom / "ID_truncated.dcm").write_bytes(whole[:-300])
    labels["ID_truncated"] = np.zeros(len(LABELS), np.uint8)
    write_rsna_csv(root / "labels.csv", labels)
    return {"dicom": dicom, "labels": root / "labels.csv", "truth": truth, "slice_labels": labels, "root": root}


def _read_cache(path: Path) -> dict:
    return {item.series_uid: item for item in Cache.open(path).series()}


def test_cache_holds_preprocessed_images_and_labels_bottom_to_top(rsna, tmp_path):
    summary = prepare(rsna["dicom"], tmp_path / "cache", labels_csv=rsna["labels"], preprocess=CONFIG, workers=1)
    assert summary.prepared_series == 4 and summary.prepared_slices == 4 * SLICES - 1
    cached = _read_cache(tmp_path / "cache")
    assert set(cached) == PREPARED
    preprocess = Preprocess(CONFIG)
    for series_uid, slices in rsna["truth"].items():
        item = cached[series_uid]
        assert item.study_uid == GOOD.get(series_uid, "1.2.826.0.1.3680043.8.498.5")
        assert item.slice_ids == tuple(sid for sid, _ in slices)  # position order, not InstanceNumber
        np.testing.assert_array_equal(item.images, np.stack([preprocess(hu) for _, hu in slices]))
        expected = np.stack([rsna["slice_labels"][sid] for sid, _ in slices]).astype(np.int8)
        np.testing.assert_array_equal(item.slice_labels, expected)
        if series_uid in GOOD:
            np.testing.assert_array_equal(item.study_labels, expected.max(axis=0))
    first = cached["1.2.826.0.1.3680043.8.498.101"]
    assert [int(np.argmax(row[:5])) for row in first.slice_labels] == [0, 1, 2, 3]


def test_undecodable_slice_is_dropped_with_its_label_row(rsna, tmp_path):
    summary = prepare(rsna["dicom"], tmp_path / "cache", labels_csv=rsna["labels"], preprocess=CONFIG, workers=1)
    item = _read_cache(tmp_path / "cache")[PARTIAL_SERIES]
    assert item.num_slices == SLICES - 1
    # Slice labels of the kept slices only: subtypes 0, 2, 3 (the dropped slice had subtype 1) ...
    assert [int(np.argmax(row[:5])) for row in item.slice_labels] == [0, 2, 3]
    # ... while the study keeps the truth of every labelled slice, the dropped one included.
    np.testing.assert_array_equal(item.study_labels, [1, 1, 1, 1, 0, 1])
    dropped = [p.reason for p in summary.problems if p.item == PARTIAL_SERIES]
    assert any("slice dropped" in reason for reason in dropped)


def test_resize_to_smaller_input(rsna, tmp_path):
    config = PreprocessConfig(input_size_px=16)
    prepare(rsna["dicom"], tmp_path / "cache", preprocess=config, workers=1)
    item = _read_cache(tmp_path / "cache")["1.2.826.0.1.3680043.8.498.103"]
    assert item.images.shape == (SLICES, 16, 16, 3)
    expected = Preprocess(config).volume(hu for _, hu in rsna["truth"]["1.2.826.0.1.3680043.8.498.103"])
    np.testing.assert_array_equal(item.images, expected)


def test_bad_inputs_are_reported_and_the_rest_prepared(rsna, tmp_path):
    # min_slices=1: the one-slice truncated series reaches the decoder (by default it is left out as too short).
    summary = prepare(rsna["dicom"], tmp_path / "cache", labels_csv=rsna["labels"], preprocess=CONFIG, workers=1,
                      series_filter=SeriesFilter(min_slices=1))
    # The truncated file is caught by the header scan or, at the latest, when loaded.
    skipped = {p.item for p in summary.problems if p.reason.startswith("skipped: ")}
    assert CORRUPT_SERIES in skipped
    assert summary.skipped_series == len(skipped & {CORRUPT_SERIES, TRUNCATED_SERIES})
    report = json.loads(summary.problems_path.read_text())
    assert summary.problems_path == tmp_path / "cache" / "problems" / "0-of-1.json"
    text = json.dumps(report["problems"])
    assert any(p["item"] == CORRUPT_SERIES and p["reason"].startswith("skipped") for p in report["problems"])
    items = {p["item"] for p in report["problems"]}
    assert {"ID_notdicom.dcm", MR_SERIES} <= items
    assert "ID_truncated.dcm: pixel data truncated" in text and "modality MR" in text
    assert "unexpected" not in text
    assert report["prepared_series"] == 4
    assert not Cache(tmp_path / "cache", CONFIG).has(CORRUPT_SERIES)
    assert "skipped" in summary.line() and "problem" in summary.line()


def test_series_with_unlabelled_slices_is_skipped(rsna, tmp_path):
    labels = dict(rsna["slice_labels"])
    dropped = [sid for sid, _ in rsna["truth"]["1.2.826.0.1.3680043.8.498.102"][:2]]
    for sid in dropped:
        del labels[sid]
    write_rsna_csv(tmp_path / "partial.csv", labels)
    summary = prepare(rsna["dicom"], tmp_path / "cache", labels_csv=tmp_path / "partial.csv", preprocess=CONFIG, workers=1)
    assert summary.prepared_series == 3
    reasons = [p.reason for p in summary.problems if p.item == "1.2.826.0.1.3680043.8.498.102"]
    assert any("2 of 4 slices lack labels" in r for r in reasons)


def test_resume_skips_cached_series_and_redoes_missing_ones(rsna, tmp_path):
    out = tmp_path / "cache"
    prepare(rsna["dicom"], out, labels_csv=rsna["labels"], preprocess=CONFIG, workers=1)
    before = {p.name: p.read_bytes() for p in Cache.open(out).series_paths()}
    again = prepare(rsna["dicom"], out, labels_csv=rsna["labels"], preprocess=CONFIG, workers=1)
    assert (again.prepared_series, again.cached_series) == (0, 4)
    # A killed run: one series file missing and a temp file left behind.
    victim = Cache.open(out).path_for("1.2.826.0.1.3680043.8.498.102")
    victim.unlink()
    (out / "series" / f".{victim.name}.abc.tmp").write_bytes(b"half")
    third = prepare(rsna["dicom"], out, labels_csv=rsna["labels"], preprocess=CONFIG, workers=1)
    assert (third.prepared_series, third.cached_series) == (1, 3)
    assert {p.name: p.read_bytes() for p in Cache.open(out).series_paths()}.keys() == before.keys()
    np.testing.assert_array_equal(Cache.read(victim).images, np.load(victim.with_suffix(".npy")))


def test_two_shards_make_the_same_cache_as_one_run(rsna, tmp_path):
    whole = prepare(rsna["dicom"], tmp_path / "one", labels_csv=rsna["labels"], preprocess=CONFIG, workers=1)
    parts = [
        prepare(rsna["dicom"], tmp_path / "two", labels_csv=rsna["labels"], preprocess=CONFIG, workers=1, shard=(i, 2))
        for i in (0, 1)
    ]
    assert all(p.prepared_series > 0 for p in parts)
    assert sum(p.prepared_series for p in parts) == whole.prepared_series
    assert sum(p.skipped_series for p in parts) == whole.skipped_series
    one = {p.name: p for p in Cache.open(tmp_path / "one").series_paths()}
    two = {p.name: p for p in Cache.open(tmp_path / "two").series_paths()}
    assert one.keys() == two.keys()
    for name in one:
        a, b = Cache.read(one[name]), Cache.read(two[name])
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.slice_labels, b.slice_labels)
        assert a.slice_ids == b.slice_ids
    assert sorted(p.name for p in (tmp_path / "two" / "problems").iterdir()) == ["0-of-2.json", "1-of-2.json"]


def test_shard_rule_is_sha1_of_the_series_uid():
    assert shard_of("1.2.3", 1) == 0
    assert shard_of("1.2.3", 7) == 5  # int(sha1("1.2.3") = 6f9f3348..., 16) % 7
    assert parse_shard("2/8") == (2, 8)
    for bad in ("2/2", "-1/3", "x/2", "3", "1/0"):
        with pytest.raises(ConfigError, match="i/n"):
            parse_shard(bad)


def test_header_scan_in_processes_gives_the_same_series(rsna, monkeypatch):
    from ich_edge.dicom import find_series

    serial = find_series(rsna["dicom"])
    monkeypatch.setattr("ich_edge.dicom.series._SCAN_CHUNK_FILES", 2)  # use the pool on a tiny folder
    pooled = find_series(rsna["dicom"], workers=2)
    assert pooled == serial and len(pooled.series) == 6


def test_worker_processes_give_the_same_cache(rsna, tmp_path, monkeypatch):
    monkeypatch.setattr("ich_edge.dicom.series._SCAN_CHUNK_FILES", 2)
    calls = []
    summary = prepare(
        rsna["dicom"], tmp_path / "pool", labels_csv=rsna["labels"], preprocess=CONFIG, workers=2,
        progress=lambda done, total: calls.append((done, total)), series_filter=SeriesFilter(min_slices=1),
    )
    assert summary.prepared_series == 4 and summary.skipped_series >= 1
    total = summary.prepared_series + summary.skipped_series
    assert calls == [(done, total) for done in range(1, total + 1)]
    prepare(rsna["dicom"], tmp_path / "serial", labels_csv=rsna["labels"], preprocess=CONFIG, workers=1)
    pool, serial = _read_cache(tmp_path / "pool"), _read_cache(tmp_path / "serial")
    assert set(pool) == set(serial) == PREPARED
    for uid in PREPARED:
        np.testing.assert_array_equal(pool[uid].images, serial[uid].images)
        np.testing.assert_array_equal(pool[uid].slice_labels, serial[uid].slice_labels)


def test_study_level_csv_gives_study_labels_only(rsna, tmp_path):
    path = tmp_path / "studies.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_uid", *LABELS])
        writer.writerow(["1.2.826.0.1.3680043.8.498.1", 1, 0, 0, 0, 1, 1])
    summary = prepare(rsna["dicom"], tmp_path / "cache", labels_csv=path, preprocess=CONFIG, workers=1)
    cached = _read_cache(tmp_path / "cache")
    assert set(cached) == {"1.2.826.0.1.3680043.8.498.101", "1.2.826.0.1.3680043.8.498.102"}
    for item in cached.values():
        assert not item.has_slice_labels and (item.slice_labels == -1).all()
        np.testing.assert_array_equal(item.study_labels, [1, 0, 0, 0, 1, 1])
    missing = [p for p in summary.problems if p.item == "1.2.826.0.1.3680043.8.498.103"]
    assert missing and "is not in studies.csv" in missing[0].reason


def test_without_labels_everything_is_unknown(rsna, tmp_path):
    prepare(rsna["dicom"], tmp_path / "cache", preprocess=CONFIG, workers=1)
    cached = _read_cache(tmp_path / "cache")
    assert len(cached) == 4
    assert all((c.slice_labels == -1).all() and (c.study_labels == -1).all() for c in cached.values())


def test_library_errors(rsna, tmp_path):
    with pytest.raises(NoSeriesError, match="does not exist"):
        prepare(tmp_path / "nowhere", tmp_path / "cache")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(NoSeriesError):
        prepare(empty, tmp_path / "cache")
    with pytest.raises(LabelsError, match="not found"):
        prepare(rsna["dicom"], tmp_path / "cache", labels_csv=tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="workers"):
        prepare(rsna["dicom"], tmp_path / "cache", workers=0)
    with pytest.raises(ConfigError, match="shard"):
        prepare(rsna["dicom"], tmp_path / "cache", shard=(2, 2))
    prepare(rsna["dicom"], tmp_path / "cache", preprocess=CONFIG, workers=1)
    with pytest.raises(CacheError, match="other preprocessing"):
        prepare(rsna["dicom"], tmp_path / "cache", preprocess=PreprocessConfig(input_size_px=16), workers=1)


def test_cli_prepares_and_prints_one_line(rsna, tmp_path, capsys):
    out = tmp_path / "cache"
    args = ["prepare", "--dicom", str(rsna["dicom"]), "--labels-csv", str(rsna["labels"]), "--out", str(out), "--input-size-px", "32", "--workers", "1"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("prepared 4 series (15 slices), skipped ") and "already cached 0" in line
    assert main(args) == 0
    assert "prepared 0 series (0 slices)" in capsys.readouterr().out and len(Cache.open(out)) == 4


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--dicom", "{missing}"], 3, "does not exist"),
        (["--dicom", "{dicom}", "--shard", "5/2"], 2, "--shard"),
        (["--dicom", "{dicom}", "--input-size-px", "4"], 2, "size_px"),
        (["--dicom", "{dicom}", "--workers", "0"], 2, "workers"),
        (["--dicom", "{dicom}", "--labels-csv", "{missing}"], 3, "labels CSV not found"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code(rsna, tmp_path, capsys, extra, code, message):
    args = [a.format(missing=tmp_path / "missing", dicom=rsna["dicom"]) for a in extra]
    assert main(["prepare", *args, "--out", str(tmp_path / "cache")]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("ich-edge: error:") and message in err and "\n" not in err


def test_cli_refuses_cache_with_other_input_size(rsna, tmp_path, capsys):
    out = tmp_path / "cache"
    base = ["prepare", "--dicom", str(rsna["dicom"]), "--out", str(out), "--workers", "1"]
    assert main([*base, "--input-size-px", "32"]) == 0
    capsys.readouterr()
    assert main([*base, "--input-size-px", "16"]) != 0
    assert "other preprocessing" in capsys.readouterr().err


def test_series_without_study_uid_stands_for_its_own_study(tmp_path):
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    rng = np.random.default_rng(3)
    for k in range(3):
        ds = build_ct_dataset(
            _slice_hu(rng), sop_instance_uid=f"ID_00000000{k}", series_uid="1.2.3.4", study_uid="1.2.3",
            geometry=SliceGeometry(position_mm=(0.0, 0.0, 5.0 * k)), instance_number=k + 1,
        )
        del ds.StudyInstanceUID
        write_dataset_atomic(ds, dicom / f"ID_00000000{k}.dcm")
    summary = prepare(dicom, tmp_path / "cache", preprocess=CONFIG, workers=1)
    item = _read_cache(tmp_path / "cache")["1.2.3.4"]
    assert item.study_uid == "1.2.3.4" and item.num_slices == 3
    assert any("Study Instance UID" in p.reason for p in summary.problems)


def test_stderr_counter_draws_in_place():
    import io

    from ich_edge.cli.prepare import StderrCounter

    stream = io.StringIO()
    counter = StderrCounter(stream, tty=True)
    counter(1, 2)
    counter(2, 2)
    assert stream.getvalue() == "\rprepare: 1/2 series\rprepare: 2/2 series\n"


def test_stderr_counter_writes_lines_every_interval_when_not_a_terminal():
    import io

    from ich_edge.cli.prepare import StderrCounter

    stream = io.StringIO()  # not a TTY: a log file or a batch job
    counter = StderrCounter(stream, what="headers", interval_s=3600.0)
    for done in range(1, 101):
        counter(done, 100)
    lines = stream.getvalue().splitlines()
    # the first call, then nothing for an hour, then the last: whole lines, no carriage returns
    assert [line.split(" (")[0] for line in lines] == ["prepare: 1/100 headers", "prepare: 100/100 headers"]
    assert "\r" not in stream.getvalue()
