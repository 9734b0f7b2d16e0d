"""Stored pixel values of one CT slice, and their conversion to Hounsfield units.

Plain functions over ``(ndarray, Dataset)``, in the manner of pydicom's
``pixels.processing``. The rules, in the order they are applied:

1. Decode. Uncompressed (native) data is read with ``np.frombuffer`` on
   ``(7FE0,0010) Pixel Data``, which is several times faster than
   ``Dataset.pixel_array``; its length must be Rows x Columns x Bits Allocated / 8 (one pad
   byte allowed): shorter is a truncated file, longer a mis-declared Bits Allocated or matrix
   (:class:`~ich_edge.errors.ImplausiblePixelsError`). RLE Lossless (the golden sample's
   syntax) goes straight to pylibjpeg-rle's frame decoder (:data:`DIRECT_DECODERS`: 5-7x
   faster than pydicom's numpy RLE decoder, output sized by the header alone); the other
   compressed transfer syntaxes (JPEG, JPEG-LS, JPEG 2000) go through ``pixel_array`` and so
   through the pylibjpeg plugins, but only after the size the codestream itself declares
   (JPEG SOF, JPEG 2000 SIZ) is found equal to Rows x Columns, which are at most
   :data:`MAX_MATRIX_PX`: no decoder is handed a stream that asks for more memory than the
   header allows.
2. Keep the ``(0028,0101) Bits Stored`` low bits and drop stray high bits (some scanners
   write 12-bit data with garbage above bit 11), then sign-extend when
   ``(0028,0103) Pixel Representation`` is 1.
3. Modality LUT: ``HU = stored * (0028,1053) Rescale Slope + (0028,1052) Rescale Intercept``
   through :class:`ich_edge.transforms.ToHounsfield`. Both are Type 1 in the CT Image module
   (PS3.3 C.8.2.1): on a CT slice a missing or malformed value, or a slope that is not a
   finite number > 0, raises :class:`~ich_edge.errors.ImplausiblePixelsError` instead of
   assuming 1 and 0 (an intercept assumed 0 makes every HU 1024 too high, and a bleed-positive
   study a clean NEGATIVE). Other modalities keep the old defaults (they are never predicted).
4. Padding becomes air, :data:`AIR_HU` (-1024 HU): stored values equal to
   ``(0028,0120) Pixel Padding Value`` (or inside the range it forms with
   ``(0028,0121) Pixel Padding Range Limit``), and every value below -1024 HU. Nothing in a
   head is less dense than air, so such values are padding outside the field of view
   (RSNA's -2000 stored values, i.e. -3024 HU with intercept -1024). RSNA's other padding,
   stored 0 with intercept -1024, is already -1024 HU. -1024 is below the low end of every
   window used (brain 0, subdural -20, bone -800 HU), so any choice of air value gives the
   same model input except at the edge of the field of view, where the area resize mixes
   padding with tissue; mapping padding to air keeps that edge physical.

``MONOCHROME1`` is *not* inverted: in DICOM the photometric interpretation applies after
the modality and VOI LUTs, for display (PS3.3 C.7.6.3.1.2), so the HU given by the rescale
already mean the same thing for MONOCHROME1 and MONOCHROME2 slices. Inverting stored values
would turn bone into air. The series scanner reports MONOCHROME1 slices so they can be
checked by eye.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from ich_edge.dicom.codestream import check_codestream_size
from ich_edge.dicom.plausibility import TISSUE_RANGE_HU
from ich_edge.errors import ImplausiblePixelsError, NoPixelDataError, PixelDataError
from ich_edge.quiet import native_output_silenced
from ich_edge.transforms import ToHounsfield

#: HU given to padding and to everything below air.
AIR_HU = -1024.0
#: Largest Rows or Columns accepted (CT is 512, sometimes 1024); bounds decoder memory.
MAX_MATRIX_PX = 4096

_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def first_number(value) -> float | None:
    """First number of a DICOM DS/IS value as a float, or None if there is none.

    Tolerates what scanners write for ``(0028,1050) Window Center`` and similar:
    multi-valued ``"40\\\\40"``, zero-padded ``"00040"``, spaces, bytes, pydicom
    ``MultiValue`` and plain numbers.
    """
    numbers = numbers_of(value)
    return numbers[0] if numbers else None


def numbers_of(value) -> list[float] | None:
    """All numbers of a (possibly multi-valued) DS/IS value, or None if any is malformed."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if isinstance(value, str):
        items = [item for item in value.split("\\") if item.strip()]
    elif isinstance(value, (int, float)):
        items = [value]
    else:
        try:
            items = list(value)
        except TypeError:
            return None
    try:
        numbers = [float(str(item).strip()) for item in items]
    except ValueError:
        return None
    if not numbers or not all(np.isfinite(numbers)):
        return None
    return numbers


@dataclass(frozen=True)
class PixelModule:
    """The Image Pixel and CT Image attributes needed to turn stored values into HU.

    Build it with :meth:`from_dataset`, which rejects what ich-edge cannot use (colour,
    multi-frame, 1-bit, missing matrix size) with an error saying why.
    """

    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    slope: float | None
    intercept: float | None
    padding_range: tuple[int, int] | None

    @classmethod
    def from_dataset(cls, ds: Dataset, *, rescale: bool = True) -> "PixelModule":
        """Read the pixel module of ``ds``.

        ``rescale=False`` (header scans, which need no HU) leaves ``slope`` and ``intercept``
        None instead of checking them; they are checked when the pixels are read.

        Reads (0028,0002) Samples per Pixel, (0028,0004) Photometric Interpretation,
        (0028,0008) Number of Frames, (0028,0010) Rows, (0028,0011) Columns,
        (0028,0100) Bits Allocated, (0028,0101) Bits Stored, (0028,0103) Pixel
        Representation, (0028,1052) Rescale Intercept, (0028,1053) Rescale Slope,
        (0028,0120) Pixel Padding Value and (0028,0121) Pixel Padding Range Limit.

        Raises
        ------
        PixelDataError
            If the slice is not a single-frame grayscale image with 8, 16 or 32 bits.
        ImplausiblePixelsError
            If ``rescale`` and the rescale of a CT slice is missing or unusable
            (:func:`rescale_of`).
        """
        if "Rows" not in ds and "Columns" not in ds:
            raise NoPixelDataError(
                "no (0028,0010) Rows or (0028,0011) Columns: not an image slice "
                "(a report, plan, DICOMDIR or similar)"
            )
        samples = first_number(ds.get("SamplesPerPixel", 1))
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip().upper()
        if samples != 1 or photometric not in _MONOCHROME:
            raise PixelDataError(
                f"(0028,0004) Photometric Interpretation is {photometric} with {samples:g} samples per pixel; "
                "ich-edge reads grayscale CT slices (MONOCHROME1/2), not colour or screenshot images"
            )
        frames = first_number(ds.get("NumberOfFrames", 1)) or 1
        if frames != 1:
            raise PixelDataError(
                f"(0028,0008) Number of Frames is {frames:g}; ich-edge reads one slice per file "
                "(split enhanced multi-frame CT into single frames first, e.g. with dcmtk's dcmsplit)"
            )
        rows, columns = first_number(ds.get("Rows")), first_number(ds.get("Columns"))
        if not rows or not columns or rows < 1 or columns < 1:
            raise PixelDataError("(0028,0010) Rows or (0028,0011) Columns is missing or zero")
        if rows > MAX_MATRIX_PX or columns > MAX_MATRIX_PX:
            raise PixelDataError(
                f"the matrix is {rows:g}x{columns:g} pixels; ich-edge reads CT slices up to "
                f"{MAX_MATRIX_PX}x{MAX_MATRIX_PX} (the header is probably corrupt)"
            )
        bits_allocated = first_number(ds.get("BitsAllocated"))
        if bits_allocated not in (8, 16, 32):
            raise PixelDataError(f"(0028,0100) Bits Allocated is {bits_allocated or 0:g}; CT pixels need 8, 16 or 32")
        bits_stored = first_number(ds.get("BitsStored", bits_allocated)) or bits_allocated
        if not 1 <= bits_stored <= bits_allocated:
            bits_stored = bits_allocated
        signed = first_number(ds.get("PixelRepresentation", 0)) == 1
        if "RescaleSlope" not in ds and "ModalityLUTSequence" in ds:
            raise PixelDataError(
                "the slice maps stored values to HU through a (0028,3000) Modality LUT Sequence, "
                "which ich-edge does not support; convert it to Rescale Slope/Intercept"
            )
        slope, intercept = rescale_of(ds) if rescale else (None, None)
        padding = _padding_range(ds, int(bits_stored), signed)
        if padding is not None and slope is not None:
            _check_padding_hu(padding, slope, intercept)
        return cls(
            rows=int(rows),
            columns=int(columns),
            bits_allocated=int(bits_allocated),
            bits_stored=int(bits_stored),
            signed=signed,
            photometric=photometric,
            slope=slope,
            intercept=intercept,
            padding_range=padding,
        )

    @property
    def num_pixel_bytes(self) -> int:
        """Bytes of uncompressed pixel data: Rows x Columns x Bits Allocated / 8."""
        return self.rows * self.columns * self.bits_allocated // 8


_RESCALE_TAGS = (("RescaleSlope", "(0028,1053) Rescale Slope"), ("RescaleIntercept", "(0028,1052) Rescale Intercept"))


def rescale_of(ds: Dataset) -> tuple[float, float]:
    """``(slope, intercept)`` of ``HU = stored * slope + intercept``, checked.

    Reads (0028,1053) Rescale Slope and (0028,1052) Rescale Intercept. Both are Type 1 in the
    CT Image module, so a CT slice (``(0008,0060) Modality`` CT or missing) must carry each
    as exactly one finite number, and the slope must be > 0 (a zero slope makes every pixel
    one HU; a negative one turns bone into air). Other modalities keep DICOM's identity
    defaults (slope 1, intercept 0) where a value is missing or malformed.

    Raises
    ------
    ImplausiblePixelsError
        On a CT slice whose rescale is missing, malformed, non-finite, or has slope <= 0.
    """
    modality = str(ds.get("Modality", "") or "CT").strip().upper()
    values = []
    for keyword, tag in _RESCALE_TAGS:
        try:
            raw = ds.get(keyword)
        except Exception:  # pydicom failed to convert a malformed DS: present, not a number
            raw = "?"
        numbers = _raw_numbers(raw)
        if modality != "CT":
            values.append(numbers[0] if numbers else (1.0 if keyword == "RescaleSlope" else 0.0))
            continue
        if raw is None or raw == "":
            raise ImplausiblePixelsError(
                f"{tag} is missing; it is required (Type 1) on CT slices and without it the HU are "
                "unknown: fix the export (PACS/anonymiser) so that it keeps the tag"
            )
        if numbers is None or len(numbers) != 1:
            raise ImplausiblePixelsError(
                f"{tag} is not one finite number; the HU are unknown: fix the export that wrote it"
            )
        values.append(numbers[0])
    slope, intercept = values
    if not slope > 0.0:
        raise ImplausiblePixelsError(
            f"(0028,1053) Rescale Slope is {slope:g}; it must be > 0 (0 gives every pixel one HU, "
            "a negative slope turns bone into air): fix the export that wrote it"
        )
    return float(slope), float(intercept)


def _raw_numbers(value) -> list[float] | None:
    """:func:`numbers_of` that also reads a value pydicom kept as text because it is malformed."""
    try:
        return numbers_of(value)
    except Exception:  # a DS pydicom could not convert: as good as malformed
        return None


def _padding_range(ds: Dataset, bits_stored: int, signed: bool) -> tuple[int, int] | None:
    """(low, high) stored values that are padding, from (0028,0120) and (0028,0121)."""
    value = first_number(ds.get("PixelPaddingValue"))
    if value is None:
        return None
    limit = first_number(ds.get("PixelPaddingRangeLimit"))
    # The padding tags are US or SS depending on Pixel Representation; bring them into the
    # same bit pattern as the pixels so that -2000 read as 63536 still matches.
    ends = [_as_stored(int(v), bits_stored, signed) for v in (value, value if limit is None else limit)]
    return min(ends), max(ends)


def _check_padding_hu(padding: tuple[int, int], slope: float, intercept: float) -> None:
    """Refuse padding whose HU reach the soft-tissue window: it would turn brain, CSF or blood into
    air (padding marks pixels outside the field of view: far below air, or above any tissue)."""
    low_hu, high_hu = (v * slope + intercept for v in padding)
    tissue_low, tissue_high = TISSUE_RANGE_HU
    if low_hu <= tissue_high and high_hu >= tissue_low:
        shown = f"{low_hu:g}" if low_hu == high_hu else f"{low_hu:g}..{high_hu:g}"
        raise ImplausiblePixelsError(
            f"(0028,0120) Pixel Padding Value (and (0028,0121) Range Limit) mark {shown} HU as padding, inside "
            f"the soft-tissue window {tissue_low:g}..{tissue_high:g} HU: brain, CSF and blood would become air; "
            "fix the export that wrote them"
        )


def _as_stored(value: int, bits_stored: int, signed: bool) -> int:
    masked = value & ((1 << bits_stored) - 1)
    if signed and masked & (1 << (bits_stored - 1)):
        masked -= 1 << bits_stored
    return masked


def is_native(ds: Dataset) -> bool:
    """True when (0002,0010) Transfer Syntax UID says the pixel data is not compressed."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return syntax is None or not syntax.is_compressed


def _decode_rle(ds: Dataset, module: PixelModule) -> np.ndarray | None:
    """RLE Lossless through pylibjpeg-rle, as unsigned little-endian stored values; None
    when pylibjpeg-rle is not installed (then ``pixel_array`` decodes, more slowly)."""
    try:
        from rle import decode_pixel_data
    except ImportError:
        return None
    from pydicom.encaps import generate_frames

    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    # A frame longer than Rows x Columns (a mis-declared matrix) panics in the Rust decoder, whose
    # panic hook prints a screenful per slice; the PanicException carries the text to the error.
    with native_output_silenced(replay_on_error=False):
        data = decode_pixel_data(
            frame, version=2, rows=module.rows, columns=module.columns, bits_allocated=module.bits_allocated
        )
    stored = np.frombuffer(data, dtype=f"<u{module.bits_allocated // 8}", count=module.rows * module.columns)
    return stored.reshape(module.rows, module.columns)


#: Transfer syntaxes decoded without ``Dataset.pixel_array``: UID -> decoder returning the
#: stored values, or None to fall back to ``pixel_array``.
DIRECT_DECODERS = {"1.2.840.10008.1.2.5": _decode_rle}  # RLE Lossless


def _is_big_endian(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None:
        return not syntax.is_little_endian
    encoding = ds.original_encoding
    return encoding[1] is False


def decode_stored(ds: Dataset, module: PixelModule) -> np.ndarray:
    """Raw stored values ``(rows, cols)`` of the slice, before masking.

    Reads (7FE0,0010) Pixel Data; native data through ``np.frombuffer``, RLE Lossless
    through pylibjpeg-rle (:data:`DIRECT_DECODERS`), other compressed data through
    ``ds.pixel_array`` (pylibjpeg plugins).

    Raises
    ------
    NoPixelDataError
        If the data set has no (7FE0,0010) Pixel Data.
    PixelDataError
        If the pixel data is shorter than Rows x Columns needs, or cannot be decoded.
    """
    if "PixelData" not in ds:
        raise NoPixelDataError()
    if is_native(ds):
        data = ds.PixelData
        if len(data) < module.num_pixel_bytes:
            raise PixelDataError(
                f"pixel data truncated: {len(data)} of {module.num_pixel_bytes} bytes "
                f"({module.rows} x {module.columns} x {module.bits_allocated // 8}); "
                "the file is incomplete or corrupt, copy it again from the source"
            )
        if len(data) > module.num_pixel_bytes + 1:  # one pad byte makes an odd length even
            raise ImplausiblePixelsError(
                f"(7FE0,0010) Pixel Data holds {len(data)} bytes where Rows x Columns x Bits Allocated / 8 "
                f"= {module.rows} x {module.columns} x {module.bits_allocated // 8} = {module.num_pixel_bytes}: "
                "(0028,0100) Bits Allocated or the matrix is mis-declared; fix the export that wrote it"
            )
        order = ">" if _is_big_endian(ds) else "<"
        dtype = np.dtype(f"{order}u{module.bits_allocated // 8}")
        stored = np.frombuffer(data, dtype=dtype, count=module.rows * module.columns)
        return stored.reshape(module.rows, module.columns)
    check_codestream_size(ds, module.rows, module.columns)
    syntax = ds.file_meta.TransferSyntaxUID
    direct = DIRECT_DECODERS.get(str(syntax))
    try:
        stored = direct(ds, module) if direct is not None else None
        if stored is None:
            stored = ds.pixel_array
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:  # RuntimeError, ValueError, ... and the Rust RLE decoder's PanicException
        raise PixelDataError(
            f"cannot decode {syntax.name} pixel data ({err.__class__.__name__}: {error_text(err)}); "
            "check that pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg and pylibjpeg-rle are installed, "
            "or decompress the file with dcmtk's dcmdjpeg"
        ) from err
    if stored.shape != (module.rows, module.columns) or stored.dtype.kind not in "iu":
        raise PixelDataError(
            f"decoded pixels have shape {stored.shape} and type {stored.dtype}, "
            f"expected ({module.rows}, {module.columns}) integers"
        )
    return stored


def error_text(err: Exception, max_chars: int = 300) -> str:
    """``err``'s message on one line, cut to ``max_chars``."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def mask_bits_stored(stored: np.ndarray, module: PixelModule) -> np.ndarray:
    """Keep the (0028,0101) Bits Stored low bits; sign-extend if (0028,0103) is 1.

    Returns an integer array of the same item size (a view when nothing needs masking).
    """
    if not stored.dtype.isnative:
        stored = stored.astype(stored.dtype.newbyteorder("="))
    nbits = stored.dtype.itemsize * 8
    unsigned = stored.view(f"u{stored.dtype.itemsize}")
    signed_dtype = np.dtype(f"i{stored.dtype.itemsize}")
    bits = min(module.bits_stored, nbits)
    if bits == nbits:
        return unsigned.view(signed_dtype) if module.signed else unsigned
    masked = unsigned & unsigned.dtype.type((1 << bits) - 1)
    if not module.signed:
        return masked
    # Sign extension of a `bits`-wide value: (v ^ s) - s with s the sign bit.
    sign_bit = signed_dtype.type(1 << (bits - 1))
    extended = masked.view(signed_dtype)
    extended ^= sign_bit
    extended -= sign_bit
    return extended


def stored_to_hu(stored: np.ndarray, module: PixelModule) -> np.ndarray:
    """Masked stored values to float32 HU, with padding and sub-air values set to -1024.

    Applies (0028,1053) Rescale Slope and (0028,1052) Rescale Intercept through
    :class:`~ich_edge.transforms.ToHounsfield`, then (0028,0120) Pixel Padding Value /
    (0028,0121) Pixel Padding Range Limit.
    """
    to_hu = ToHounsfield(module.slope, module.intercept)
    hu = to_hu(stored)
    if module.padding_range is not None:
        low, high = module.padding_range
        padding = stored == low if low == high else (stored >= low) & (stored <= high)
        hu[padding] = AIR_HU
    # Most slices have nothing below air: find out from the integer extreme (a fast
    # reduction, converted exactly as the pixels were) before a float pass over the slice.
    darkest = stored.min() if module.slope > 0 else stored.max()
    if to_hu(np.array([darkest]))[0] < AIR_HU:
        np.maximum(hu, np.float32(AIR_HU), out=hu)
    return hu


def dataset_to_hu(ds: Dataset) -> np.ndarray:
    """One slice's (7FE0,0010) Pixel Data in HU, float32 ``(rows, cols)``; see the module rules."""
    module = PixelModule.from_dataset(ds)
    return stored_to_hu(mask_bits_stored(decode_stored(ds, module), module), module)
