"""Sizes that compressed pixel data declares, read before any decoder runs.

A decoder allocates what a codestream's own frame header asks for, not what (0028,0010)
Rows x (0028,0011) Columns say: a few-KB JPEG declaring 65535 x 65535 takes gigabytes. The
frame headers are read here byte by byte (JPEG/JPEG-LS SOF, JPEG 2000 SIZ), nothing is
decoded. Used by :func:`ich_edge.dicom.pixels.decode_stored`.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from ich_edge.errors import PixelDataError

#: Transfer syntaxes whose frames start with a JPEG (or JPEG-LS) frame header (SOF).
_JPEG_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
     "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
)
#: Transfer syntaxes whose frames hold a JPEG 2000 / HTJ2K codestream (SIZ marker).
_J2K_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
     "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
)
#: JPEG start-of-frame markers (every SOFn but DHT C4, JPG C8, DAC CC), and JPEG-LS SOF55.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}


def check_codestream_size(ds: Dataset, rows: int, columns: int) -> None:
    """Refuse compressed pixel data whose codestream declares another size than the header.

    A decoder allocates what the stream's own frame header asks for, not (0028,0010) Rows x
    (0028,0011) Columns: a few-KB JPEG declaring 65535 x 65535 would take gigabytes. The
    JPEG/JPEG-LS SOF and JPEG 2000 SIZ markers of the first frame are read (no decoding) and
    must equal ``rows`` x ``columns`` from the header (at most
    :data:`ich_edge.dicom.pixels.MAX_MATRIX_PX` each). RLE output is sized by the header alone.

    Raises
    ------
    PixelDataError
        If the sizes differ or a JPEG/JPEG 2000 frame has no readable size.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if syntax not in _JPEG_SYNTAXES and syntax not in _J2K_SYNTAXES:
        return
    frame = _first_fragment(ds.PixelData)
    size = _jpeg_size(frame) if syntax in _JPEG_SYNTAXES else _j2k_size(frame)
    if size != (rows, columns):
        declared = "no readable frame size" if size is None else f"{size[0]} x {size[1]} pixels"
        raise PixelDataError(
            f"the compressed frame declares {declared}, (0028,0010) Rows x (0028,0011) Columns say "
            f"{rows} x {columns}; refused before decoding (a corrupt or hostile file)"
        )


def _first_fragment(pixel_data: bytes, max_bytes: int = 1 << 16) -> bytes:
    """The start of the first fragment of encapsulated (7FE0,0010) Pixel Data (PS3.5 A.4)."""
    # Item tag (FFFE,E000) + 4-byte length: the Basic Offset Table, then the first fragment.
    offset = 8 + int.from_bytes(pixel_data[4:8], "little")
    length = int.from_bytes(pixel_data[offset + 4 : offset + 8], "little")
    return bytes(pixel_data[offset + 8 : offset + 8 + min(length, max_bytes)])


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(rows, columns) from the SOF segment of a JPEG/JPEG-LS stream, None if not found."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # segments without a length
            pos += 2
            continue
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            return int.from_bytes(data[pos + 5 : pos + 7], "big"), int.from_bytes(data[pos + 7 : pos + 9], "big")
        if marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _j2k_size(data: bytes) -> tuple[int, int] | None:
    """(rows, columns) from the SIZ marker of a JPEG 2000 codestream (bare or in a JP2 box)."""
    start = data.find(b"\xff\x4f\xff\x51")
    if start < 0 or start + 24 > len(data):
        return None
    # SOC, SIZ, Lsiz(2), Rsiz(2), Xsiz, Ysiz, XOsiz, YOsiz (4 bytes each, big-endian).
    xsiz, ysiz, xosiz, yosiz = (int.from_bytes(data[start + 8 + 4 * k : start + 12 + 4 * k], "big") for k in range(4))
    return ysiz - yosiz, xsiz - xosiz
