"""Reading one file: sources, headers, RSNA UIDs without warnings, and each bad-input error."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import pydicom
import pytest
from dicom_helpers import phantom_hu, write_series

from ich_edge.dicom import read_dataset, read_hu, read_slice_info
from ich_edge.errors import DicomError, NoPixelDataError, NotDicomError, PixelDataError


def test_read_hu_from_path_file_object_and_dataset(tmp_path):
    (path,) = write_series(tmp_path, num_slices=1)
    expected = phantom_hu(0)
    np.testing.assert_array_equal(read_hu(path), expected)
    np.testing.assert_array_equal(read_hu(str(path)), expected)
    with open(path, "rb") as handle:
        np.testing.assert_array_equal(read_hu(handle), expected)
    np.testing.assert_array_equal(read_hu(io.BytesIO(path.read_bytes())), expected)
    np.testing.assert_array_equal(read_hu(pydicom.dcmread(path)), expected)


def test_rsna_ids_are_read_without_warnings_or_log_lines(tmp_path, caplog):
    (path,) = write_series(tmp_path, num_slices=1, names=["ID_000012eaf"])
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger="pydicom"):
        warnings.simplefilter("always")
        info = read_slice_info(path)
        read_hu(path)
    assert info.sop_instance_uid == "ID_000012eaf"
    assert [str(w.message) for w in caught] == []
    assert [r for r in caplog.records if "VR UI" in r.getMessage()] == []
    assert not logging.getLogger("pydicom").filters  # the local filter was removed again


def test_slice_info_reads_the_geometry(tmp_path):
    path = write_series(tmp_path, num_slices=2, spacing_mm=2.5)[1]
    info = read_slice_info(path)
    assert info.modality == "CT"
    assert (info.rows, info.columns) == (32, 32)
    assert info.position_mm == (-60.0, -60.0, -17.5)
    assert info.orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert info.instance_number == 1
    assert info.pixel_spacing_mm == (7.2, 7.2)  # the 230.4 mm head field of view over 32 px
    assert info.slice_thickness_mm == 5.0
    assert info.window_hu == (40.0, 80.0)
    assert info.series_uid and info.study_uid


def test_missing_sop_instance_uid_falls_back_to_the_file_stem(tmp_path):
    def edit(ds, k):
        del ds.SOPInstanceUID

    (path,) = write_series(tmp_path, num_slices=1, names=["ID_00000abcd"], edit=edit)
    assert read_slice_info(path).sop_instance_uid == "ID_00000abcd"


def test_file_without_preamble_is_still_read(tmp_path):
    (path,) = write_series(tmp_path, num_slices=1)
    ds = pydicom.dcmread(path)
    ds.preamble = None
    del ds.file_meta
    bare = tmp_path / "bare.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(bare, ds, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert b"DICM" not in bare.read_bytes()[:256]
    np.testing.assert_array_equal(read_hu(bare), phantom_hu(0))


def test_not_dicom(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("ID,Label\nID_000012eaf_any,0\n")
    with pytest.raises(NotDicomError, match=r"^notes\.txt: not a DICOM file"):
        read_hu(text)
    with pytest.raises(NotDicomError, match=r"^notes\.txt: not a DICOM file"):
        read_slice_info(text)
    with pytest.raises(NotDicomError, match="not a DICOM file"):
        read_dataset(text)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(NotDicomError, match=r"^empty\.dcm"):
        read_hu(empty)


def test_missing_file(tmp_path):
    with pytest.raises(DicomError, match=r"gone\.dcm: cannot read the file \(No such file"):
        read_hu(tmp_path / "gone.dcm")


def test_no_pixel_data(tmp_path):
    def edit(ds, k):
        del ds.PixelData

    (path,) = write_series(tmp_path, num_slices=1, edit=edit)
    with pytest.raises(NoPixelDataError, match=r"\.dcm: the file has no \(7FE0,0010\) Pixel Data"):
        read_hu(path)


def test_non_image_dicom_has_no_pixel_data():
    from pydicom.data import get_testdata_file

    with pytest.raises(NoPixelDataError, match=r"rtplan\.dcm: no \(0028,0010\) Rows.*not an image"):
        read_slice_info(get_testdata_file("rtplan.dcm"))


def test_truncated_pixel_data(tmp_path):
    (path,) = write_series(tmp_path, num_slices=1)
    path.write_bytes(path.read_bytes()[:-100])
    info = read_slice_info(path)  # headers are intact; the pixels are not
    assert info.rows == 32
    with pytest.raises(PixelDataError, match=r"pixel data truncated: 1948 of 2048 bytes.*copy it again"):
        read_hu(path)


def test_label_replaces_the_file_name(tmp_path):
    (path,) = write_series(tmp_path, num_slices=1)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PixelDataError, match=r"^sub/x\.dcm: pixel data truncated"):
        read_hu(path, label="sub/x.dcm")
