"""Fuzzing the reader: truncated and bit-flipped files raise only ich-edge's own errors."""

from __future__ import annotations

import io

import pytest
from dicom_helpers import write_series
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ich_edge.dicom import find_series, read_hu, read_slice_info
from ich_edge.errors import IchEdgeError


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict:
    """The bytes of a good native slice and a good RLE slice, and a folder to fuzz in."""
    root = tmp_path_factory.mktemp("fuzz")
    (native,) = write_series(root / "native", num_slices=1, size_px=16)
    (rle,) = write_series(root / "rle", num_slices=1, size_px=16, compress_rle=True)
    work = root / "work"
    work.mkdir()
    return {"native": native.read_bytes(), "rle": rle.read_bytes(), "work": work}


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """``data`` cut somewhere and/or with a few bits flipped (header and pixels alike)."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(buffer) - 1))
        buffer[position] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()):
        del buffer[draw(st.integers(0, len(buffer))) :]
    return bytes(buffer)


def _call_all(blob: bytes, work) -> None:
    path = work / "ID_fuzz.dcm"
    path.write_bytes(blob)
    for call in (
        lambda: read_hu(io.BytesIO(blob)),
        lambda: read_hu(path),
        lambda: read_slice_info(path),
        lambda: [series.load() for series in find_series(path).series],
        lambda: [series.load() for series in find_series(work).series],
    ):
        try:
            call()
        except IchEdgeError:
            pass  # the only kind of error allowed out


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the damage itself
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_raise_only_ich_edge_errors(seeds, data):
    kind = data.draw(st.sampled_from(["native", "rle"]))
    _call_all(data.draw(damaged(seeds[kind])), seeds["work"])


def test_undamaged_seeds_read(seeds):
    for kind in ("native", "rle"):
        assert read_hu(io.BytesIO(seeds[kind])).shape == (16, 16)
