"""Stored values to HU: sign, stray bits, padding, MONOCHROME1, window strings, decoders."""

from __future__ import annotations

import sys

import numpy as np
import pydicom
import pytest
from dicom_helpers import phantom_hu, write_series
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DSfloat

from ich_edge.dicom import AIR_HU, read_hu, read_slice_info
from ich_edge.dicom.pixels import PixelModule, decode_stored, first_number, mask_bits_stored
from ich_edge.dicom.write import SliceGeometry, build_ct_dataset
from ich_edge.errors import ImplausiblePixelsError, PixelDataError


def _dataset(stored: np.ndarray, **tags) -> Dataset:
    """A CT data set holding ``stored`` as-is (uint16 or int16 bytes), tags overridden."""
    ds = build_ct_dataset(
        np.zeros(stored.shape),
        sop_instance_uid="ID_000000001",
        series_uid="1.2.3",
        study_uid="1.2",
        geometry=SliceGeometry(position_mm=(0.0, 0.0, 0.0)),
        instance_number=1,
    )
    ds.PixelData = np.ascontiguousarray(stored).astype(stored.dtype.newbyteorder("<")).tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def test_uint16_with_intercept_and_int16_without_give_the_same_hu():
    hu = np.array([[-1024, -1000, 0, 40], [80, 1000, 2000, 3071]], dtype=np.int32)
    unsigned = _dataset((hu + 1024).astype(np.uint16), PixelRepresentation=0, RescaleIntercept=-1024)
    signed = _dataset(hu.astype(np.int16), PixelRepresentation=1, RescaleIntercept=0)
    np.testing.assert_array_equal(read_hu(unsigned), hu.astype(np.float32))
    np.testing.assert_array_equal(read_hu(signed), hu.astype(np.float32))
    assert read_hu(unsigned).dtype == np.float32


@pytest.mark.parametrize("signed", [True, False])
def test_bits_stored_12_ignores_stray_high_bits(signed):
    values = np.array([[-5, 0, 100, 2047]] if signed else [[0, 5, 1124, 4095]], dtype=np.int32)
    low_bits = (values & 0x0FFF).astype(np.uint16)
    stray = low_bits | np.uint16(0xF000) if not signed else low_bits | np.uint16(0x5000)
    ds = _dataset(stray, BitsStored=12, HighBit=11, PixelRepresentation=int(signed), RescaleIntercept=0)
    module = PixelModule.from_dataset(ds)
    np.testing.assert_array_equal(mask_bits_stored(decode_stored(ds, module), module), values)
    np.testing.assert_array_equal(read_hu(ds), np.maximum(values, AIR_HU))


def test_monochrome1_keeps_the_rescale_hu():
    """MONOCHROME1 inverts the display only (PS3.3 C.7.6.3.1.2); HU must not flip."""
    stored = np.array([[0, 1024, 2024, 3000]], dtype=np.int16)
    mono2 = _dataset(stored)
    mono1 = _dataset(stored, PhotometricInterpretation="MONOCHROME1")
    np.testing.assert_array_equal(read_hu(mono1), read_hu(mono2))
    np.testing.assert_array_equal(read_hu(mono1), [[-1024, 0, 1000, 1976]])


def test_pixel_padding_value_and_sub_air_values_become_air():
    stored = np.array([[-2000, -1999, 0, 1054]], dtype=np.int16)
    ds = _dataset(stored, PixelPaddingValue=-1999, RescaleIntercept=-1024)
    # -2000 stored is -3024 HU (below air), -1999 is the padding tag, 0 stored is air.
    np.testing.assert_array_equal(read_hu(ds), [[AIR_HU, AIR_HU, -1024.0, 30.0]])


def test_rsna_minus_2000_padding_with_intercept_0():
    ds = _dataset(np.array([[-2000, -2000, 40, 60]], dtype=np.int16), RescaleIntercept=0)
    np.testing.assert_array_equal(read_hu(ds), [[AIR_HU, AIR_HU, 40.0, 60.0]])


def test_padding_range_and_padding_value_read_with_the_wrong_sign():
    stored = np.array([[100, 150, 200, 201]], dtype=np.int16)
    ds = _dataset(stored, RescaleIntercept=1000)  # padding at 1100..1200 HU: no soft tissue lies there
    ds.PixelPaddingValue = 100
    ds.PixelPaddingRangeLimit = 200
    np.testing.assert_array_equal(read_hu(ds), [[AIR_HU, AIR_HU, AIR_HU, 1201.0]])
    # -2000 as an unsigned 16-bit pattern (63536) still matches signed pixels.
    wrapped = _dataset(np.array([[-2000, 5]], dtype=np.int16), RescaleIntercept=1000)
    wrapped.add_new(0x00280120, "US", 63536)
    np.testing.assert_array_equal(read_hu(wrapped), [[AIR_HU, 1005.0]])


@pytest.mark.parametrize(("value", "limit"), [(1054, 1124), (1024, None), (63536, 1000)])
def test_padding_that_reaches_soft_tissue_is_refused(value, limit):
    """Padding at 30..100 HU, at water's 0 HU, or a range running from -3024 HU through tissue:
    brain, CSF or blood would become air, and the model would judge a head without them."""
    ds = _dataset(np.array([[0, 1064, 2000]], dtype=np.uint16), RescaleIntercept=-1024)
    ds.add_new(0x00280120, "US", value)
    if limit is not None:
        ds.add_new(0x00280121, "US", limit)
    with pytest.raises(ImplausiblePixelsError, match="inside the soft-tissue window"):
        read_hu(ds)


def test_rescale_slope_is_applied():
    ds = _dataset(np.array([[0, 10, 2048]], dtype=np.int16), RescaleSlope=0.5, RescaleIntercept=-1024)
    np.testing.assert_allclose(read_hu(ds), [[AIR_HU, -1019.0, 0.0]])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("40\\40", 40.0),
        ("00040", 40.0),
        (b"00040\\00080", 40.0),
        (" -600.5 ", -600.5),
        (MultiValue(DSfloat, ["35", "700"]), 35.0),
        (DSfloat("80"), 80.0),
        (12, 12.0),
        ("abc", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_first_number_parses_window_strings(value, expected):
    assert first_number(value) == expected


def test_multi_valued_and_zero_padded_window_tags_in_a_file(tmp_path):
    def edit(ds, k):
        ds.WindowCenter = ["00040", "00040"]
        ds.WindowWidth = "00080"

    (path, *_) = write_series(tmp_path, num_slices=1, edit=edit)
    assert read_slice_info(path).window_hu == (40.0, 80.0)


NATIVE_TEST_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_expb.dcm",
]


@pytest.mark.parametrize("name", NATIVE_TEST_FILES)
def test_native_fast_path_matches_pixel_array(name):
    ds = pydicom.dcmread(get_testdata_file(name))
    module = PixelModule.from_dataset(ds)
    np.testing.assert_array_equal(mask_bits_stored(decode_stored(ds, module), module), ds.pixel_array)


def test_ct_small_applies_its_padding_tag():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert ds.PixelPaddingValue == -2000
    expected = np.maximum(ds.pixel_array.astype(np.float32) - 1024.0, AIR_HU)
    np.testing.assert_array_equal(read_hu(ds), expected)


def test_rle_written_by_write_py_decodes_like_uncompressed(tmp_path):
    (plain,) = write_series(tmp_path / "plain", num_slices=1)
    (rle,) = write_series(tmp_path / "rle", num_slices=1, compress_rle=True)
    assert pydicom.dcmread(rle).file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(read_hu(rle), read_hu(plain))
    np.testing.assert_array_equal(read_hu(plain), phantom_hu(0))


@pytest.mark.parametrize(
    ("compressed", "plain"),
    [("MR_small_RLE.dcm", "MR_small.dcm"), ("MR_small_jp2klossless.dcm", "MR_small.dcm")],
)
def test_pydicom_compressed_files_decode_like_their_uncompressed_twin(compressed, plain):
    np.testing.assert_array_equal(read_hu(get_testdata_file(compressed)), read_hu(get_testdata_file(plain)))


def test_jpeg2000_ct_slice_decodes():
    path = get_testdata_file("693_J2KI.dcm")  # CT, JPEG 2000, 14 bits stored, signed
    ds = pydicom.dcmread(path)
    hu = read_hu(path)
    assert hu.shape == (512, 512)
    rescaled = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = np.maximum(rescaled, AIR_HU)
    np.testing.assert_array_equal(hu, expected)
    assert read_hu(get_testdata_file("JPEG2000.dcm")).shape == (1024, 256)


def test_undecodable_jpeg_says_how_to_fix():
    with pytest.raises(PixelDataError, match=r"JPEG-lossy\.dcm: cannot decode JPEG Extended .*pylibjpeg"):
        read_hu(get_testdata_file("JPEG-lossy.dcm"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("SC_jpeg_no_color_transform.dcm", "RGB with 3 samples per pixel.*grayscale"),
        ("rtdose_1frame.dcm", None),
        ("rtdose.dcm", "Number of Frames is 15.*one slice per file"),
        ("liver_1frame.dcm", "Bits Allocated is 1;"),
    ],
)
def test_unusable_pixel_formats_are_rejected(name, message):
    path = get_testdata_file(name)
    if message is None:  # a single-frame dose grid is grayscale 32-bit: readable
        assert read_hu(path).ndim == 2
        return
    with pytest.raises(PixelDataError, match=message):
        read_hu(path)
    with pytest.raises(PixelDataError, match=message):
        read_slice_info(path)


def test_zero_rescale_slope_is_an_error():
    with pytest.raises(PixelDataError, match="Rescale Slope is 0"):
        read_hu(_dataset(np.zeros((2, 2), np.int16), RescaleSlope=0))


def _rle_twin(ds: Dataset) -> Dataset:
    """``ds`` RLE Lossless compressed (pydicom's own encoder), as read back from bytes."""
    import io

    from pydicom.uid import RLELossless

    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.10.99"
    twin = pydicom.dcmread(io.BytesIO(_to_bytes(ds)))
    twin.compress(RLELossless, encoding_plugin="pydicom")
    return pydicom.dcmread(io.BytesIO(_to_bytes(twin)))


def _to_bytes(ds: Dataset) -> bytes:
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_rle_is_decoded_by_pylibjpeg_rle_without_pixel_array(tmp_path, monkeypatch):
    """RLE Lossless goes straight to pylibjpeg-rle (5x faster than pydicom's numpy decoder),
    not through Dataset.pixel_array; 12 bits stored, signed, with stray high bits."""
    rng = np.random.default_rng(0)
    stored = rng.integers(-2048, 2048, size=(16, 12), dtype=np.int16)
    stray = stored.view(np.uint16) | np.uint16(0x5000)  # garbage above bit 11, as some scanners write
    plain = _dataset(stray.view(np.int16), PixelRepresentation=1, BitsStored=12, HighBit=11, RescaleIntercept=0)
    rle = _rle_twin(plain)
    expected = read_hu(plain)
    monkeypatch.setattr(Dataset, "pixel_array", property(lambda self: pytest.fail("pixel_array was used")))
    np.testing.assert_array_equal(read_hu(rle), expected)
    np.testing.assert_array_equal(expected, np.maximum(stored.astype(np.float32), AIR_HU))


def test_rle_without_pylibjpeg_rle_falls_back_to_pixel_array(monkeypatch):
    monkeypatch.setitem(sys.modules, "rle", None)  # import rle raises ImportError
    np.testing.assert_array_equal(
        read_hu(get_testdata_file("MR_small_RLE.dcm")), read_hu(get_testdata_file("MR_small.dcm"))
    )


def test_truncated_rle_frame_is_a_pixel_data_error():
    ds = _rle_twin(_dataset(np.arange(64, dtype=np.int16).reshape(8, 8), PixelRepresentation=1))
    items = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = pydicom.encaps.encapsulate([items[0][:20]])
    with pytest.raises(PixelDataError, match="cannot decode RLE Lossless.*pylibjpeg-rle"):
        read_hu(ds)


def test_a_mis_declared_rle_matrix_is_one_error_without_the_decoders_panic_screen(tmp_path, capfd):
    """One column too few: the RLE frame decodes past the declared matrix and the Rust decoder
    panics; its panic hook printed a screen per slice on fd 2 before the PixelDataError."""
    (path,) = write_series(tmp_path, num_slices=1, compress_rle=True)
    ds = pydicom.dcmread(path)
    ds.Columns = ds.Columns - 1
    with pytest.raises(PixelDataError, match="PanicException"):
        decode_stored(ds, PixelModule.from_dataset(ds))
    assert "panicked" not in capfd.readouterr().err
