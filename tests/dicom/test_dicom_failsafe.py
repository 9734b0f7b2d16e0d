"""Fail safe on DICOM that cannot be trusted: never a clean NEGATIVE, never an unbounded read.

Generated inputs only. A bleed-positive phantom study from the synth writer is predicted by
the trained demo model (android_demo_assets/model.tflite) first untouched (POSITIVE), then
with one defect each; every defect must give UNREADABLE (the series rules, a mis-declared
pixel module, implausible HU), and ``inspect`` must flag it. Then the decoder bounds
(codestream size, deflate inflation, series size, file size), special files (a FIFO, a link
to /dev/zero) and one-line messages.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_helpers import write_series
from pydicom.dataelem import DataElement
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit

from ich_edge.cli import main
from ich_edge.dicom import find_series, read_hu, read_slice_info, reader, series as series_module
from ich_edge.dicom.write import write_dataset_atomic
from ich_edge.errors import DicomError, ImplausiblePixelsError, PixelDataError, SeriesError, UnreadableSeriesError
from ich_edge.synth.config import SynthConfig
from ich_edge.synth.writer import write_study

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "android_demo_assets" / "model.tflite"


# --- the mis-declared series ------------------------------------------------------------------


def _malformed(tag: int, vr: str, value: str) -> DataElement:
    """An element holding ``value`` as is (pydicom would refuse to set it through its VR)."""
    element = DataElement(tag, "LO", value)
    element.VR = vr
    return element


def _no_intercept(ds, k):
    del ds.RescaleIntercept


def _bad_intercept(ds, k):
    del ds.RescaleIntercept
    ds.add(_malformed(0x00281052, "DS", "-1024x"))


def _bits8(ds, k):
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7


def _slope_negative(ds, k):
    ds.RescaleSlope = -1


def _unsigned(ds, k):
    """Intercept 0 and signed stored HU, declared unsigned: air -1000 HU reads as 64536."""
    hu = ds.pixel_array.astype(np.int32) + int(ds.RescaleIntercept)
    ds.PixelData, ds.RescaleIntercept, ds.PixelRepresentation = hu.astype(np.int16).tobytes(), 0, 0


def _coronal(ds, k):
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]


def _intercept_500_low(ds, k):
    """Every HU 500 lower: brain at about -470 HU, still above air, gone from the tissue window."""
    ds.RescaleIntercept = float(ds.RescaleIntercept) - 500


def _slope_half(ds, k):
    ds.RescaleSlope = 0.5


def _padding_over_brain(ds, k):
    """Pixel Padding Value/Range at 30..100 HU: brain and blood would become air."""
    low = round((30 - float(ds.RescaleIntercept)) / float(ds.RescaleSlope))
    vr = "SS" if ds.PixelRepresentation == 1 else "US"
    ds.add_new(0x00280120, vr, low)
    ds.add_new(0x00280121, vr, low + 70)


def _mirrored(ds, k):
    """Rows running to the patient's right (feet-first exports): the model never saw mirrored heads."""
    ds.ImageOrientationPatient = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def _scrambled(ds, k):
    """The pixels of each slice in a random order: a head's histogram, no head (the attack's "scrambled")."""
    pixels = ds.pixel_array.copy()
    np.random.default_rng(k).shuffle(pixels.reshape(-1))
    ds.PixelData = pixels.tobytes()


def _rows_shuffled(ds, k):
    """The rows of each slice in a random order: every row is a real row, across them no head."""
    pixels = ds.pixel_array.copy()
    np.random.default_rng(k).shuffle(pixels)
    ds.PixelData = pixels.tobytes()


def _half_scrambled(ds, k):
    """Every other slice scrambled: pooled over the series, the neighbours still correlate about 0.5."""
    if k % 2:
        _scrambled(ds, k)


def _thin_slices(ds, k):
    """A 0.625 mm reconstruction: positions 8 times closer, Slice Thickness to match."""
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient, ds.SliceThickness = [x, y, z / 8.0], 0.625


def _thin_thickness(ds, k):
    """Only (0018,0050) Slice Thickness says 1 mm (the positions keep their 5 mm)."""
    ds.SliceThickness = 1.0


def _field_of_view(mm: float):
    def edit(ds, k):
        ds.PixelSpacing = [mm / int(ds.Rows), mm / int(ds.Columns)]
    return edit


def _contrast(ds, k):
    """A CT angiography exported beside the plain scan: (0018,0010) names the agent on every slice."""
    ds.ContrastBolusAgent = "Omnipaque 350"


def _localizer(ds, k):
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]


def _two_patients(ds, k):
    if k % 2:
        ds.PatientID = "SYNTHETIC-OTHER"


#: defect -> (edit of each slice k, text the UNREADABLE reason must hold)
DEFECTS = {
    "intercept absent": (_no_intercept, "(0028,1052) Rescale Intercept is missing"),
    "intercept -1024x": (_bad_intercept, "(0028,1052) Rescale Intercept is not one finite number"),
    "BitsAllocated 8 on 16-bit data": (_bits8, "(0028,0100) Bits Allocated or the matrix is mis-declared"),
    "slope -1": (_slope_negative, "(0028,1053) Rescale Slope is -1"),
    "PixelRepresentation 0 on signed data": (_unsigned, "implausible HU"),
    "intercept 500 HU too low": (_intercept_500_low, "of the pixels above air"),
    "slope 0.5 instead of 1": (_slope_half, "of the pixels above air"),
    "padding over the brain": (_padding_over_brain, "inside the soft-tissue window"),
    "coronal": (_coronal, "not axial"),
    "mirrored image axes": (_mirrored, "image axes mirrored or rotated"),
    "scrambled pixels": (_scrambled, "no image structure"),
    "rows in a random order": (_rows_shuffled, "no image structure"),
    "thin slices 0.625 mm": (_thin_slices, "thin slices: 0."),
    "Slice Thickness 1 mm": (_thin_thickness, "thin slices: (0018,0050) Slice Thickness 1 mm"),
    "targeted field of view 120 mm": (_field_of_view(120.0), "field of view 120 x 120 mm"),
    "body field of view 480 mm": (_field_of_view(480.0), "field of view 480 x 480 mm"),
    "contrast agent named": (_contrast, "contrast-enhanced: (0018,0010) Contrast/Bolus Agent names an agent on 32 of 32"),
    "localizer": (_localizer, "localizer"),
    "two patients in one series": (_two_patients, "2 different (0010,0020) Patient IDs"),
}


@pytest.fixture(scope="module")
def positive_study(tmp_path_factory) -> Path:
    """One bleed-positive synth study (128 px, 32 slices, the demo model's input size)."""
    folder = tmp_path_factory.mktemp("positive") / "dicom"
    folder.mkdir()
    config = SynthConfig(studies=1, seed=3, matrix_px=128, slices_min=32, slices_max=34, positive_fraction=1.0, workers=1)
    record = write_study(config, 0, folder)
    assert record.labels.any(), "the phantom must hold a bleed"
    return folder


def _edited_copy(study: Path, out: Path, edit) -> Path:
    out.mkdir(parents=True)
    files = sorted(study.glob("*.dcm"))
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        edit(ds, k)
        write_dataset_atomic(ds, out / path.name)
    return out


def _predict_json(folder: Path, capsys) -> tuple[int, list[dict], str]:
    code = main(["predict", "--model", str(MODEL), "--dicom", str(folder), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_untouched_phantom_is_positive(positive_study, capsys):
    code, (report,), _ = _predict_json(positive_study, capsys)
    assert code == 0 and report["verdict"] == "POSITIVE" and report["unreadable"] == []


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_misdeclared_positive_series_is_unreadable_never_negative(positive_study, tmp_path, capsys, defect):
    edit, reason = DEFECTS[defect]
    folder = _edited_copy(positive_study, tmp_path / "series", edit)
    code, (report,), err = _predict_json(folder, capsys)
    assert report["verdict"] == "UNREADABLE", report["triage"]
    assert report["study"] is None and report["slices"] == []  # the model was not run on it
    assert any(reason in text for text in report["unreadable"]), report["unreadable"]
    assert report["triage"].startswith("UNREADABLE  not judged | ") and "\n" not in report["triage"]
    assert code == 3 and "every one is UNREADABLE" in err  # nothing could be judged: exit 3
    assert main(["inspect", "--dicom", str(folder), "--json"]) == 0
    (inspected,) = json.loads(capsys.readouterr().out)
    assert any(p.startswith("UNREADABLE: ") and reason in p for p in inspected["problems"]), inspected["problems"]


def test_half_the_slices_scrambled_is_unreadable(tmp_path, capsys):
    """Pooled over the series the neighbours still correlate about 0.5: each slice is judged too.

    At 256 px: a scrambled slice of the 128 px study keeps under 1000 pairs inside the body, too
    few to judge one slice (``MIN_NEIGHBOUR_PAIRS``); real CT matrices are 512 px.
    """
    study = tmp_path / "study"
    study.mkdir()
    write_study(SynthConfig(studies=1, seed=3, matrix_px=256, slices_min=24, slices_max=24, positive_fraction=1.0,
                            workers=1), 0, study)
    code, (report,), _ = _predict_json(study, capsys)
    assert report["verdict"] == "POSITIVE", report["triage"]
    folder = _edited_copy(study, tmp_path / "series", _half_scrambled)
    code, (report,), _ = _predict_json(folder, capsys)
    assert report["verdict"] == "UNREADABLE" and code == 3, report["triage"]
    assert any("no image structure" in text for text in report["unreadable"]), report["unreadable"]


def test_one_unreadable_series_beside_a_judged_one_exits_0(positive_study, tmp_path, capsys):
    folder = tmp_path / "both"
    _edited_copy(positive_study, folder / "good", lambda ds, k: None)
    _edited_copy(positive_study, folder / "bad", lambda ds, k: (_no_intercept(ds, k), _uid(ds)))
    code, reports, err = _predict_json(folder, capsys)
    assert code == 0
    assert sorted(r["verdict"] for r in reports) == ["POSITIVE", "UNREADABLE"]
    assert "UNREADABLE; 1 problem: 32 slices" in err or "UNREADABLE; 1 problem: 3" in err
    assert main(["predict", "--model", str(MODEL), "--dicom", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "\nUNREADABLE  not judged | " in text and "\nPOSITIVE  any " in text


def _uid(ds):
    ds.SeriesInstanceUID = ds.SeriesInstanceUID + ".9"


def test_prepare_skips_what_predict_calls_unreadable(positive_study, tmp_path, capsys):
    dicom = tmp_path / "dicom"
    _edited_copy(positive_study, dicom / "good", lambda ds, k: None)
    for n, defect in enumerate(("PixelRepresentation 0 on signed data", "two patients in one series", "slope -1")):
        edit = DEFECTS[defect][0]
        _edited_copy(positive_study, dicom / f"bad{n}", lambda ds, k, e=edit, n=n: (e(ds, k), _suffix(ds, n)))
    assert main(["prepare", "--dicom", str(dicom), "--out", str(tmp_path / "cache"), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    problems = "".join(p.read_text() for p in (tmp_path / "cache" / "problems").rglob("*") if p.is_file())
    assert "implausible HU" in problems + captured.out + captured.err
    assert "different (0010,0020) Patient IDs" in problems + captured.out + captured.err
    assert "(0028,1053) Rescale Slope is -1" in problems + captured.out + captured.err
    assert len(list((tmp_path / "cache" / "series").glob("*.json"))) == 1  # the untouched series only


def _suffix(ds, n):
    ds.SeriesInstanceUID = f"{ds.SeriesInstanceUID}.{n + 1}"


# --- the pixel module rules, slice by slice (tiny series) --------------------------------------


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda ds, k: ds.__delattr__("RescaleSlope"), r"\(0028,1053\) Rescale Slope is missing"),
        (lambda ds, k: ds.__setattr__("RescaleSlope", 0), r"Rescale Slope is 0"),
        (lambda ds, k: (ds.__delattr__("RescaleSlope"), ds.add(_malformed(0x00281053, "DS", "nan"))), "not one finite"),
        (lambda ds, k: ds.__setattr__("RescaleIntercept", [-1024, 0]), "not one finite number"),
        (lambda ds, k: ds.__setattr__("RescaleIntercept", None), "Rescale Intercept is missing"),
        (lambda ds, k: ds.__setattr__("PixelData", ds.PixelData + b"\0\0"), "Pixel Data holds 2050 bytes"),
    ],
    ids=["slope absent", "slope 0", "slope nan", "intercept two values", "intercept empty", "two bytes too long"],
)
def test_misdeclared_pixel_module_is_refused(tmp_path, edit, match):
    (path,) = write_series(tmp_path, num_slices=1, edit=edit)
    with pytest.raises(ImplausiblePixelsError, match=match):
        read_hu(path)


def test_pad_byte_and_other_modalities_keep_reading(tmp_path):
    """One pad byte is allowed; the CT rule does not touch a non-CT slice (never predicted)."""
    def eight_bit(ds, k):  # 31 x 31 x 1 byte is odd: the writer pads it to 962 bytes
        stored = np.clip(ds.pixel_array.astype(np.int32) // 16, 0, 255).astype(np.uint8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.PixelData = -1024, 16, stored.tobytes()

    (padded,) = write_series(tmp_path / "pad", num_slices=1, size_px=31, edit=eight_bit)
    assert len(pydicom.dcmread(padded).PixelData) == 31 * 31 + 1
    assert read_hu(padded).shape == (31, 31)
    (mr,) = write_series(tmp_path / "mr", num_slices=1, edit=lambda ds, k: (ds.__setattr__("Modality", "MR"), ds.__delattr__("RescaleIntercept")))
    assert read_hu(mr).min() >= -1024.0


def test_series_with_one_misdeclared_slice_is_unreadable_not_a_gap(tmp_path):
    write_series(tmp_path, num_slices=4, edit=lambda ds, k: _no_intercept(ds, k) if k == 2 else None)
    (series,) = find_series(tmp_path).series
    with pytest.raises(UnreadableSeriesError, match="1 slice .*Rescale Intercept is missing"):
        series.load()


@pytest.mark.parametrize(
    "hu_edit, match",
    [
        (lambda hu: np.where(hu < -900, 0.0, hu), "at least 1% air"),
        (lambda hu: hu + 5000.0, "above 3000 HU"),
        (lambda hu: np.where(hu > -900, 1500.0, hu), "soft tissue"),
    ],
    ids=["no air", "everything above bone", "no soft tissue"],
)
def test_implausible_hu_make_the_series_unreadable(tmp_path, hu_edit, match):
    def edit(ds, k):
        hu = ds.pixel_array.astype(np.float64) - 1024.0
        ds.PixelData = np.clip(hu_edit(hu) + 1024.0, -32768, 32767).astype(np.int16).tobytes()

    write_series(tmp_path, edit=edit)
    (series,) = find_series(tmp_path).series
    with pytest.raises(UnreadableSeriesError, match=match):
        series.load()


# --- decoder bounds ----------------------------------------------------------------------------


def _jpeg_slice(folder: Path, declared: tuple[int, int] | None) -> Path:
    """A 32x32 8-bit JPEG Baseline slice; ``declared`` patches its SOF frame size (needs Pillow to encode it)."""
    Image = pytest.importorskip("PIL.Image", reason="writing the JPEG test slice needs Pillow (pip install pillow)")

    def edit(ds, k):
        stored = np.clip(ds.pixel_array.astype(np.int32) // 16, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(stored).save(buffer, format="JPEG", quality=90)
        data = bytearray(buffer.getvalue())
        if declared is not None:
            sof = data.index(b"\xff\xc0")
            data[sof + 5 : sof + 9] = declared[0].to_bytes(2, "big") + declared[1].to_bytes(2, "big")
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 16
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([bytes(data)])
        ds["PixelData"].VR = "OB"

    (path,) = write_series(folder, num_slices=1, edit=edit)
    return path


def test_jpeg_declaring_a_huge_frame_is_refused_before_decoding(tmp_path):
    assert read_hu(_jpeg_slice(tmp_path / "ok", None)).shape == (32, 32)  # an honest JPEG decodes
    with pytest.raises(PixelDataError, match="declares 8192 x 8192 pixels.*refused before decoding"):
        read_hu(_jpeg_slice(tmp_path / "bomb", (8192, 8192)))


def test_jpeg2000_declaring_a_huge_frame_is_refused_before_decoding(tmp_path):
    # SOC, SIZ (Lsiz 41, Rsiz 0, Xsiz, Ysiz, XOsiz, YOsiz, tiles, one component), EOC.
    size = (9000).to_bytes(4, "big")
    siz = b"\xff\x4f\xff\x51" + (41).to_bytes(2, "big") + b"\0\0" + size + size + bytes(8) + size + size + bytes(8)
    codestream = siz + b"\x00\x01\x0f\x01\x01" + b"\xff\xd9"

    def edit(ds, k):
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        ds.PixelData = encapsulate([codestream])
        ds["PixelData"].VR = "OB"

    (path,) = write_series(tmp_path, num_slices=1, edit=edit)
    with pytest.raises(PixelDataError, match="declares 9000 x 9000 pixels"):
        read_hu(path)


def _deflated_slice(folder: Path, extra_bytes: int) -> Path:
    """A deflated slice carrying ``extra_bytes`` zeros in a private element (they deflate ~1000:1)."""

    def edit(ds, k):
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        if extra_bytes:
            ds.add_new(0x00091010, "OB", bytes(extra_bytes))

    (path,) = write_series(folder, num_slices=1, edit=edit)
    return path


def test_deflate_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_INFLATED_BYTES", 2**20)
    assert read_hu(_deflated_slice(tmp_path / "ok", 0)).shape == (32, 32)  # a normal deflated file reads
    bomb = _deflated_slice(tmp_path / "bomb", 4 * 2**20)
    assert bomb.stat().st_size < 64 * 2**10
    for call in (read_hu, read_slice_info, lambda p: read_hu(io.BytesIO(p.read_bytes()))):
        with pytest.raises(PixelDataError, match="inflates beyond 1 MiB"):
            call(bomb)


def test_series_and_file_bounds_hold_before_decoding(tmp_path, monkeypatch):
    write_series(tmp_path)
    (series,) = find_series(tmp_path).series
    monkeypatch.setattr(series_module, "MAX_SERIES_PIXELS", 4 * 32 * 32 - 1)
    monkeypatch.setattr(series_module, "read_hu", lambda *a, **k: pytest.fail("decoded before the bound"))
    with pytest.raises(SeriesError, match="refused before decoding"):
        series.load()
    monkeypatch.setattr(reader, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DicomError, match="more than a CT slice can take"):
        read_slice_info(series.slices[0].path)


# --- special files and one-line messages -------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_and_link_to_dev_zero_are_skipped_not_read(tmp_path):
    write_series(tmp_path / "in")
    os.mkfifo(tmp_path / "in" / "pipe.dcm")
    (tmp_path / "in" / "zero.dcm").symlink_to("/dev/zero")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for verb in (["inspect"], ["predict", "--model", str(MODEL)]):
        done = subprocess.run(
            [sys.executable, "-m", "ich_edge", *verb, "--dicom", str(tmp_path / "in")],
            capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
        )
        text = done.stdout + done.stderr
        assert "pipe.dcm: not a regular file (a FIFO" in text and "zero.dcm: not a regular file (a device" in text, text


def test_names_with_newlines_stay_on_one_line(tmp_path, capsys):
    write_series(tmp_path, num_slices=4, names=["ID_a\nb", "ID_c", "ID_d", "ID_e"])
    (tmp_path / "ID_c.dcm").write_bytes(b"not dicom")
    (tmp_path / "bad\rname.dcm").write_bytes(b"\0" * 10)
    assert main(["inspect", "--dicom", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("bad\\rname.dcm" in line for line in lines)
    assert not any(line.strip().startswith("b.dcm") for line in lines)
    (series,) = find_series(tmp_path).series
    assert "ID_a\\nb" in series.slice_ids
