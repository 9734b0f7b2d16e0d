"""Reading one DICOM file: its header as a :class:`SliceInfo`, its pixels in HU.

Every public function here raises only :class:`~ich_edge.errors.DicomError` subclasses,
whatever the bytes of the file are (the test suite fuzzes this with truncated and
bit-flipped files). RSNA-style SOP Instance UIDs (``ID_<hex>``, not valid UIDs) are read
without warnings; pydicom's configuration is never changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ich_edge.dicom.pixels import (
    PixelModule,
    dataset_to_hu,
    error_text,
    first_number,
    numbers_of,
)
from ich_edge.errors import DicomError, IchEdgeError, NotDicomError, PixelDataError

Source = Union[str, os.PathLike, BinaryIO, Dataset]



@dataclass(frozen=True, slots=True)
class SliceInfo:
    """What the header of one CT slice says; read by :func:`read_slice_info` without pixels.

    Attributes
    ----------
    path : the file.
    sop_instance_uid : (0008,0018) SOP Instance UID, or the file stem when missing.
    series_uid, study_uid : (0020,000E) Series / (0020,000D) Study Instance UID, or None.
    modality : (0008,0060) Modality, upper case, or None when missing.
    rows, columns : (0028,0010) Rows, (0028,0011) Columns.
    position_mm : (0020,0032) Image Position (Patient), or None.
    orientation : (0020,0037) Image Orientation (Patient), six direction cosines, or None.
    instance_number : (0020,0013) Instance Number, or None.
    pixel_spacing_mm : (0028,0030) Pixel Spacing (row spacing, column spacing), or None.
    slice_thickness_mm : (0018,0050) Slice Thickness, or None.
    window_hu : first values of (0028,1050) Window Center and (0028,1051) Window Width;
        informational only (the model uses its own windows).
    photometric : (0028,0004) Photometric Interpretation.
    patient_uid : :func:`patient_pseudonym` of (0010,0020) Patient ID, or None when missing;
        the ID itself is never kept.
    image_type : (0008,0008) Image Type values, upper case (e.g. ORIGINAL, PRIMARY, AXIAL or
        LOCALIZER), or None when missing.
    contrast_agent : (0018,0010) Contrast/Bolus Agent as written (printable), or None when missing
        or empty; :func:`ich_edge.ingest.series_filter.names_contrast_agent` says whether it names one.
    """

    path: Path
    sop_instance_uid: str
    series_uid: str | None
    study_uid: str | None
    modality: str | None
    rows: int
    columns: int
    position_mm: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    instance_number: int | None
    pixel_spacing_mm: tuple[float, float] | None
    slice_thickness_mm: float | None
    window_hu: tuple[float, float] | None = None
    photometric: str = "MONOCHROME2"
    patient_uid: str | None = None
    image_type: tuple[str, ...] | None = None
    contrast_agent: str | None = None


#: Mixed into the in-memory patient digest (public: the digest is never stored as it is).
PATIENT_SALT = "ich-edge patient pseudonym v1"


def patient_pseudonym(patient_id: str) -> str:
    """The in-memory digest of a (0010,0020) Patient ID: ``P`` + 16 hex of sha256(salt + ID).

    It tells the slices of one patient from another's while headers are grouped, and the ID
    itself is not kept. Its salt is public, so it is never written anywhere: a cache stores
    the keyed pseudonym :func:`ich_edge.dicom.privacy.keyed_pseudonym` of it instead (the
    header scan of ``prepare`` keys it, :mod:`ich_edge.ingest.scan_manifest`).
    """
    digest = hashlib.sha256(f"{PATIENT_SALT}\0{patient_id.strip()}".encode("utf-8")).hexdigest()
    return f"P{digest[:16]}"


class _DropInvalidUid(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_INVALID_UID)


_INVALID_UID = "Invalid value for VR UI"
_DROP_INVALID_UID = _DropInvalidUid()


@contextlib.contextmanager
def _quiet_invalid_uids():
    """Silence pydicom's "Invalid value for VR UI" warning and log line, inside this block only.

    RSNA's ``ID_<hex>`` SOP Instance UIDs would otherwise give one of each per file.
    pydicom both warns and logs it; the log filter is removed again on exit.
    """
    logger = logging.getLogger("pydicom")
    added = _DROP_INVALID_UID not in logger.filters
    if added:
        logger.addFilter(_DROP_INVALID_UID)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_INVALID_UID)
            yield
    finally:
        if added:
            logger.removeFilter(_DROP_INVALID_UID)


def printable(text: str) -> str:
    """``text`` with control characters escaped (a newline in a file name becomes ``\\n``),
    so that every problem and error line stays one line."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def display_name(path: str | os.PathLike) -> str:
    """The file name of ``path`` as messages show it (:func:`printable`)."""
    return printable(Path(path).name)


def _named(err: IchEdgeError, label: str | None) -> IchEdgeError:
    """The same kind of error with ``label: `` in front of its message."""
    if not label:
        return err
    return type(err)(f"{label}: {err}")


def _label(source: Source) -> str | None:
    """The file name of ``source`` for messages, or None (data sets, anonymous buffers)."""
    if isinstance(source, Dataset):
        return None
    name = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", None)
    return display_name(name) if isinstance(name, (str, os.PathLike)) else None


#: Largest file read: a 4096 x 4096 32-bit slice is 64 MiB, a CT slice about 0.5 MiB.
MAX_FILE_BYTES = 128 * 2**20
#: Largest size a deflated data set (Deflated Explicit VR Little Endian) may inflate to.
MAX_INFLATED_BYTES = MAX_FILE_BYTES
_DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
_PREAMBLE_BYTES = 132  # 128-byte preamble + "DICM"


def check_regular_file(path: str | os.PathLike) -> None:
    """Refuse what is not a regular file of at most :data:`MAX_FILE_BYTES` (links followed).

    A FIFO, a device (``/dev/zero``) or a socket, or a link to one, would block or never end
    when read.

    Raises
    ------
    DicomError
        If ``path`` is not a regular file or is too large for a CT slice.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
        kind = next((name for test, name in kinds if test(info.st_mode)), "a special file")
        raise DicomError(f"not a regular file ({kind}, or a link to one); not read")
    if info.st_size > MAX_FILE_BYTES:
        raise DicomError(
            f"{info.st_size / 2**20:.0f} MiB, more than a CT slice can take ({MAX_FILE_BYTES // 2**20} MiB); not read"
        )


def check_inflated_size(fp: BinaryIO) -> None:
    """Refuse a deflated data set that inflates beyond :data:`MAX_INFLATED_BYTES`.

    pydicom inflates a Deflated Explicit VR Little Endian data set whole, in memory, even to
    read headers: a 2 MB file can ask for gigabytes. The stream is inflated here in bounded
    chunks (and thrown away) first; ``fp`` is left where it was.

    Raises
    ------
    PixelDataError
        If the data set inflates beyond the bound.
    """
    start = fp.tell()
    try:
        head = fp.read(_PREAMBLE_BYTES + 12)
        if len(head) < _PREAMBLE_BYTES + 12 or head[128:132] != b"DICM" or head[132:134] != b"\x02\x00":
            return
        meta_bytes = min(int.from_bytes(head[-4:], "little"), 1 << 16)  # (0002,0000) group length
        if _DEFLATED_UID not in fp.read(meta_bytes):
            return
        inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
        while chunk := fp.read(1 << 16):
            while chunk:
                total += len(inflater.decompress(chunk, 1 << 20))
                if total > MAX_INFLATED_BYTES:
                    raise PixelDataError(
                        f"the deflated data set inflates beyond {MAX_INFLATED_BYTES // 2**20} MiB, more than a CT "
                        "slice can hold; refused (a corrupt or hostile file)"
                    )
                chunk = inflater.unconsumed_tail
    except zlib.error:
        return  # pydicom reports the corrupt stream
    finally:
        fp.seek(start)


def _dcmread(source, *, headers_only: bool) -> Dataset:
    """``pydicom.dcmread``, falling back to ``force=True`` for files without a preamble."""
    try:
        return pydicom.dcmread(source, stop_before_pixels=headers_only)
    except InvalidDicomError as strict_err:
        if hasattr(source, "seek"):
            source.seek(0)
        # Old files without the 128-byte preamble and "DICM" are still DICOM; anything that
        # parses only with force=True must at least look like an image to be accepted.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(source, stop_before_pixels=headers_only, force=True)
            looks_like_image = "SOPClassUID" in ds or ("Rows" in ds and "Columns" in ds)
        except Exception:
            looks_like_image = False
        if not looks_like_image:
            raise NotDicomError() from strict_err
        return ds


def _read(source, *, headers_only: bool) -> Dataset:
    """:func:`read_dataset` without the file name in front of error messages."""
    if isinstance(source, Dataset):
        return source
    try:
        if isinstance(source, (str, os.PathLike)):
            check_regular_file(source)
            with open(source, "rb") as fp:
                check_inflated_size(fp)
                with _quiet_invalid_uids():
                    return _dcmread(fp, headers_only=headers_only)
        if hasattr(source, "seek"):
            check_inflated_size(source)
        with _quiet_invalid_uids():
            return _dcmread(source, headers_only=headers_only)
    except IchEdgeError:
        raise
    except OSError as err:
        raise DicomError(f"cannot read the file ({err.strerror or err})") from err
    except Exception as err:  # pydicom raises many types on corrupt data (struct.error, ValueError, ...)
        raise NotDicomError(
            f"not a readable DICOM file ({err.__class__.__name__}: {error_text(err)}); "
            "the file is corrupt or not DICOM"
        ) from err


def read_dataset(source: Source, *, headers_only: bool = False) -> Dataset:
    """Read a DICOM file (path or binary file object) into a pydicom ``Dataset``.

    Parameters
    ----------
    source : path, binary file object, or an already-read ``Dataset`` (returned as is).
    headers_only : stop before (7FE0,0010) Pixel Data (fast; for grouping series).

    Raises
    ------
    NotDicomError
        If the bytes are not DICOM.
    DicomError
        If the file cannot be opened or read.
    """
    try:
        return _read(source, headers_only=headers_only)
    except IchEdgeError as err:
        raise _named(err, _label(source)) from err


def read_hu(source: Source, *, label: str | None = None) -> np.ndarray:
    """One slice in Hounsfield units, float32 ``(rows, cols)``.

    Decoding, bit masking, rescale and padding follow :mod:`ich_edge.dicom.pixels`:
    ``HU = stored * (0028,1053) Rescale Slope + (0028,1052) Rescale Intercept``, padding
    ((0028,0120) Pixel Padding Value) and values below air set to -1024 HU.

    Parameters
    ----------
    source : path, binary file object or ``Dataset`` of one slice.
    label : name used at the start of error messages (default: the file name).

    Raises
    ------
    NotDicomError, NoPixelDataError, PixelDataError, DicomError
        With a message that starts with the file name and says what to do.
    """
    label = label or _label(source)
    try:
        ds = _read(source, headers_only=False)
        with _quiet_invalid_uids():
            return dataset_to_hu(ds)
    except IchEdgeError as err:
        raise _named(err, label) from err
    except Exception as err:  # corrupt headers surface as TypeError/ValueError/... here
        problem = PixelDataError(f"pixel data cannot be used ({err.__class__.__name__}: {error_text(err)})")
        raise _named(problem, label) from err


def read_slice_info(path: str | os.PathLike, *, label: str | None = None) -> SliceInfo:
    """The header of one slice: the file is read up to (7FE0,0010) Pixel Data, no further.

    Files that are not images (no Rows/Columns), colour, multi-frame or with unusable bit
    depths are rejected here; missing or truncated pixel data shows when the slice is
    decoded (:func:`read_hu`, :meth:`Series.load`).

    Raises
    ------
    NotDicomError, NoPixelDataError, PixelDataError, DicomError
        With a message that starts with ``label`` (default: the file name).
    """
    path = Path(path)
    label = label or display_name(path)
    try:
        ds = _read(path, headers_only=True)
        with _quiet_invalid_uids():
            return _slice_info(ds, path, PixelModule.from_dataset(ds, rescale=False))
    except IchEdgeError as err:
        raise _named(err, label) from err
    except OSError as err:
        raise DicomError(f"{label}: cannot read the file ({err.strerror or err})") from err
    except Exception as err:  # malformed values that pydicom converts lazily
        raise DicomError(f"{label}: unreadable header ({err.__class__.__name__}: {error_text(err)})") from err


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    text = printable(str(value).strip().strip("\x00").strip())
    return text or None


def _tuple(ds: Dataset, keyword: str, size: int) -> tuple[float, ...] | None:
    try:
        numbers = numbers_of(ds.get(keyword))
    except Exception:  # a malformed DS value is as good as a missing one
        return None
    if numbers is None or len(numbers) < size:
        return None
    return tuple(numbers[:size])


def _number(ds: Dataset, keyword: str) -> float | None:
    try:
        return first_number(ds.get(keyword))
    except Exception:
        return None


def _slice_info(ds: Dataset, path: Path, module: PixelModule) -> SliceInfo:
    modality = _text(ds, "Modality")
    instance = _number(ds, "InstanceNumber")
    thickness = _number(ds, "SliceThickness")
    center, width = _number(ds, "WindowCenter"), _number(ds, "WindowWidth")
    return SliceInfo(
        path=path,
        sop_instance_uid=_text(ds, "SOPInstanceUID") or printable(path.stem),
        series_uid=_text(ds, "SeriesInstanceUID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        modality=modality.upper() if modality else None,
        rows=module.rows,
        columns=module.columns,
        position_mm=_tuple(ds, "ImagePositionPatient", 3),
        orientation=_tuple(ds, "ImageOrientationPatient", 6),
        instance_number=int(instance) if instance is not None else None,
        pixel_spacing_mm=_tuple(ds, "PixelSpacing", 2),
        slice_thickness_mm=thickness,
        window_hu=(center, width) if center is not None and width is not None else None,
        photometric=module.photometric,
        patient_uid=_patient_uid(ds),
        image_type=_image_type(ds),
        contrast_agent=_text(ds, "ContrastBolusAgent"),
    )


def _patient_uid(ds: Dataset) -> str | None:
    patient_id = _text(ds, "PatientID")
    return patient_pseudonym(patient_id) if patient_id else None


def _image_type(ds: Dataset) -> tuple[str, ...] | None:
    try:
        value = ds.get("ImageType")
        if value is None:
            return None
        values = [value] if isinstance(value, (str, bytes)) else list(value)
        words = tuple(str(v.decode("ascii", "replace") if isinstance(v, bytes) else v).strip().upper() for v in values)
    except Exception:  # a malformed CS value is as good as a missing one
        return None
    return tuple(w for w in words if w) or None
