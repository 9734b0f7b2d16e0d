"""Grouping and ordering series, and what happens to every kind of bad slice."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pydicom.data
import pytest
from dicom_helpers import SERIES_UID, phantom_hu, write_series

from ich_edge.dicom import Series, find_series
from ich_edge.errors import NoPixelDataError, NoSeriesError, NotCTError, NotDicomError, SeriesError, UnreadableSeriesError
from ich_edge.transforms import Preprocess, PreprocessConfig

CT5N = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "98892001" / "CT5N"


def _only(scan) -> Series:
    assert len(scan.series) == 1, scan.series
    return scan.series[0]


def test_position_order_beats_instance_number(series_dir):
    series = _only(find_series(series_dir))
    assert [info.instance_number for info in series.slices] == [4, 3, 2, 1]
    assert [info.position_mm[2] for info in series.slices] == [-20.0, -15.0, -10.0, -5.0]
    assert series.sort_method == "position"
    assert series.slice_spacing_mm == pytest.approx(5.0)
    assert series.pixel_spacing_mm == (7.2, 7.2)  # the 230.4 mm head field of view over 32 px
    assert (series.rows, series.columns, series.modality) == (32, 32, "CT")
    assert series.series_uid == SERIES_UID and series.problems == []
    assert series.slice_ids == [info.sop_instance_uid for info in series.slices]


def test_shuffled_file_names_do_not_change_the_order(tmp_path):
    names = ["ID_ffff00001", "ID_00000aaaa", "ID_888800002", "ID_111100003"]  # bottom to top
    write_series(tmp_path, names=names, instance_numbers=[3, 1, 4, 2])
    series = _only(find_series(tmp_path))
    assert series.slice_ids == names
    loaded = series.load()
    # The bright dot at the centre holds 100 + the slice's height index.
    assert [float(image[16, 16]) for image in loaded.images] == [100.0, 101.0, 102.0, 103.0]


def test_pydicom_ct5n_series_is_sorted_by_position():
    series = _only(find_series(CT5N))
    heights = [info.position_mm[2] for info in series.slices]
    assert heights == sorted(heights)
    assert [info.instance_number for info in series.slices] == [10, 9, 8, 7, 6]
    assert series.slice_spacing_mm == pytest.approx(2.5)
    # A 16x16 crop from inside a body holds no air: not a head, so its HU are not trusted.
    with pytest.raises(UnreadableSeriesError, match="at least 1% air"):
        series.load()


@pytest.mark.parametrize("orientation", [(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)])
def test_mirrored_image_axes_still_sort_bottom_to_top(tmp_path, orientation):
    """row x column points to the feet here; the order must still follow +z, the patient's head."""
    names = [f"ID_00000000{k}" for k in range(4)]  # bottom to top

    def edit(ds, k):
        ds.ImagePositionPatient = [-60.0, -60.0, -20.0 + 5.0 * k]

    write_series(tmp_path, orientation=orientation, names=names, edit=edit, instance_numbers=[1, 2, 3, 4])
    series = _only(find_series(tmp_path))
    assert series.slice_ids == names
    assert [info.position_mm[2] for info in series.slices] == [-20.0, -15.0, -10.0, -5.0]


def test_tilted_gantry_is_sorted_along_the_normal_not_z(tmp_path):
    tilt = math.radians(30)
    orientation = (1.0, 0.0, 0.0, 0.0, math.cos(tilt), math.sin(tilt))
    column = np.array(orientation[3:])
    shifts_mm = [0.0, -40.0, 30.0, -20.0]  # in-plane shifts along the column direction

    def edit(ds, k):
        ds.ImagePositionPatient = [float(v) for v in np.array(ds.ImagePositionPatient) + shifts_mm[k] * column]

    names = [f"ID_00000000{k}" for k in range(4)]
    write_series(tmp_path, orientation=orientation, names=names, edit=edit)
    series = _only(find_series(tmp_path))
    z_order = sorted(series.slices, key=lambda info: info.position_mm[2])
    assert [info.sop_instance_uid for info in z_order] != names  # z alone would be wrong
    assert series.slice_ids == names
    assert series.slice_spacing_mm == pytest.approx(5.0)


def test_mixed_flat_folder_groups_by_series_and_skips_mr(tmp_path):
    write_series(tmp_path, series_uid="1.2.3.1", study_uid="1.2.3")
    write_series(tmp_path, series_uid="1.2.3.2", study_uid="1.2.3", num_slices=3)

    def to_mr(ds, k):
        ds.Modality = "MR"

    write_series(tmp_path, series_uid="1.2.3.9", edit=to_mr, num_slices=2)
    scan = find_series(tmp_path)
    assert [s.series_uid for s in scan.series] == ["1.2.3.1", "1.2.3.2"]
    assert [s.num_slices for s in scan.series] == [4, 3]
    assert scan.num_files == 9
    assert scan.problems == ["series 1.2.3.9: modality MR, skipped (ich-edge reads CT only)"]


def test_only_non_ct_is_an_error(tmp_path):
    def to_mr(ds, k):
        ds.Modality = "MR"

    paths = write_series(tmp_path, edit=to_mr)
    with pytest.raises(NotCTError, match=r"no CT series; found MR \(1 series\)"):
        find_series(tmp_path)
    with pytest.raises(NotCTError, match="found MR"):
        find_series(paths[0])


def test_non_ct_slice_inside_a_ct_series_is_dropped(tmp_path):
    def one_mr(ds, k):
        if k == 2:
            ds.Modality = "MR"

    write_series(tmp_path, edit=one_mr)
    series = _only(find_series(tmp_path))
    assert series.num_slices == 3
    assert any("modality MR inside a CT series" in p for p in series.problems)


def test_missing_positions_fall_back_to_instance_number(tmp_path):
    def drop_position(ds, k):
        if k == 1:
            del ds.ImagePositionPatient

    write_series(tmp_path, edit=drop_position)
    series = _only(find_series(tmp_path))
    assert series.sort_method == "instance_number"
    assert [info.instance_number for info in series.slices] == [1, 2, 3, 4]
    assert series.slice_spacing_mm is None
    assert any("missing on 1 of 4 slices; sorted by (0020,0013) Instance Number" in p for p in series.problems)


def test_no_positions_and_no_instance_numbers_keep_file_order(tmp_path):
    def strip(ds, k):
        del ds.ImagePositionPatient
        del ds.InstanceNumber

    write_series(tmp_path, edit=strip, names=["ID_a", "ID_b", "ID_c", "ID_d"])
    series = _only(find_series(tmp_path))
    assert series.sort_method == "file_order"
    assert series.slice_ids == ["ID_a", "ID_b", "ID_c", "ID_d"]
    assert any("kept file name order" in p for p in series.problems)


def test_inconsistent_matrix_keeps_the_majority(tmp_path):
    write_series(tmp_path, num_slices=3)
    write_series(tmp_path / "odd", num_slices=1, size_px=16, names=["ID_0dd"])
    series = _only(find_series(tmp_path))
    assert (series.rows, series.columns, series.num_slices) == (32, 32, 3)
    assert "ID_0dd.dcm: 16x16 pixels, the series is 32x32; slice skipped" in series.problems


def test_duplicate_positions_and_copied_files_keep_one(tmp_path):
    def same_place(ds, k):
        if k == 3:
            ds.ImagePositionPatient = [-60.0, -60.0, -10.0]  # where slice 2 is

    paths = write_series(tmp_path, edit=same_place)
    shutil.copy(paths[0], tmp_path / "copy_of_first.dcm")
    series = _only(find_series(tmp_path))
    assert series.num_slices == 3
    assert any("same SOP Instance UID" in p and "kept the first" in p for p in series.problems)
    assert any("same position as" in p for p in series.problems)
    assert series.slice_spacing_mm == pytest.approx(5.0)


def test_gap_is_reported(tmp_path):
    def skip_one(ds, k):
        if k == 3:
            ds.ImagePositionPatient = [-60.0, -60.0, 10.0]

    write_series(tmp_path, edit=skip_one)
    series = _only(find_series(tmp_path))
    assert any(p.startswith("gap of 20.00 mm") and "slices missing?" in p for p in series.problems)


def test_bad_files_among_good_ones_are_reported_and_skipped(tmp_path):
    paths = write_series(tmp_path, num_slices=5)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / ".hidden.dcm").write_text("ignored")
    paths[4].write_bytes(paths[4].read_bytes()[:-300])  # truncated pixel data
    scan = find_series(tmp_path)
    series = _only(scan)
    assert len(scan.problems) == 2
    assert any(p.startswith("notes.txt: not a DICOM file") and p.endswith("skipped") for p in scan.problems)
    assert any(p.startswith("empty.dcm: not a DICOM file") for p in scan.problems)
    loaded = series.load()
    assert loaded.images.shape == (4, 32, 32)
    assert loaded.slice_ids == series.slice_ids[:4]
    assert len(loaded.problems) == 1 and "pixel data truncated" in loaded.problems[0]
    assert loaded.problems[0].endswith("slice dropped")


def test_unreadable_file_is_reported(tmp_path):
    write_series(tmp_path)
    (tmp_path / "ID_dangling.dcm").symlink_to(tmp_path / "gone.dcm")  # listed, cannot be opened
    scan = find_series(tmp_path)
    assert _only(scan).num_slices == 4
    assert scan.problems == ["ID_dangling.dcm: cannot read the file (No such file or directory); skipped"]


def test_files_without_series_uid_are_grouped_by_folder(tmp_path):
    def no_uid(ds, k):
        del ds.SeriesInstanceUID

    write_series(tmp_path / "a" / "b", edit=no_uid)
    scan = find_series(tmp_path)
    series = _only(scan)
    assert series.series_uid == "folder:a/b"
    assert series.num_slices == 4 and series.sort_method == "position"
    assert scan.problems == ["4 files without (0020,000E) Series Instance UID in a/b; grouped as series folder:a/b"]


def test_subfolders_are_searched(tmp_path):
    write_series(tmp_path / "p1" / "s1", series_uid="1.9.1")
    write_series(tmp_path / "p2", series_uid="1.9.2", num_slices=2)
    assert [s.series_uid for s in find_series(tmp_path).series] == ["1.9.1", "1.9.2"]


def test_nothing_to_read(tmp_path):
    with pytest.raises(NoSeriesError, match="no such file or folder"):
        find_series(tmp_path / "nowhere")
    with pytest.raises(NoSeriesError, match="the folder holds no files"):
        find_series(tmp_path)
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.csv").write_text("ID,Label\n")
    with pytest.raises(NoSeriesError, match=r"no usable DICOM slice among 2 files \(first problem: a\.txt: not a"):
        find_series(tmp_path)


def test_single_bad_file_raises_its_own_error(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("hello")
    with pytest.raises(NotDicomError, match=r"^a\.txt: not a DICOM file"):
        find_series(text)


def test_load_applies_the_transform(series_dir):
    config = PreprocessConfig(input_size_px=16)
    series = _only(find_series(series_dir))
    loaded = series.load(Preprocess(config))
    assert loaded.images.shape == (4, 16, 16, 3) and loaded.images.dtype == np.uint8
    expected = Preprocess(config).volume(phantom_hu(k) for k in range(4))
    np.testing.assert_array_equal(loaded.images, expected)
    hu = series.load()
    assert hu.images.dtype == np.float32 and hu.problems == []
    np.testing.assert_array_equal(hu.images[2], phantom_hu(2))


def test_load_with_no_usable_slice_raises(tmp_path):
    def drop_pixels(ds, k):
        del ds.PixelData

    write_series(tmp_path, edit=drop_pixels, num_slices=2)
    series = _only(find_series(tmp_path))
    with pytest.raises(SeriesError, match=r"no usable slice \(ID_\w+\.dcm: the file has no \(7FE0,0010\) Pixel Data"):
        series.load()
    with pytest.raises(NoPixelDataError):
        from ich_edge.dicom import read_hu

        read_hu(series.slices[0].path)


def test_a_slice_of_another_orientation_is_skipped_not_projected(tmp_path):
    """A coronal scout filed inside an axial series: its pixels are no axial slice of the head."""
    names = [f"ID_00000000{k}" for k in range(5)]

    def edit(ds, k):
        if k == 2:
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
        elif k == 3:  # a scanner's rounding of the axial cosines stays in
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.99999, 0.0044]

    write_series(tmp_path, num_slices=5, names=names, edit=edit)
    series = _only(find_series(tmp_path))
    assert series.slice_ids == [names[k] for k in (0, 1, 3, 4)]
    assert any(f"{names[2]}.dcm: image axes 90 deg" in problem and "slice skipped" in problem for problem in series.problems)
