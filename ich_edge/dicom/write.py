"""Writing CT slices as DICOM: used by the phantom generator, the demo assets and tests.

Files follow the RSNA 2019 conventions by default: 16-bit signed stored values with
(0028,1052) Rescale Intercept -1024, a SOPInstanceUID of the form ``ID_<9 hex>`` equal to
the file stem (not a valid DICOM UID, exactly like the real data set), axial orientation.
No patient identifiers are written: PatientName is a fixed anonymous value and PatientID a
synthetic one (``SYNTHETIC`` unless the caller passes another made-up ID).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RLELossless, generate_uid

from ich_edge.fileio import atomic_output

AXIAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class SliceGeometry:
    """Where a slice sits: (0020,0032) position, (0020,0037) orientation, (0028,0030) spacing.

    ``pixel_spacing_mm`` None spreads :data:`HEAD_FIELD_OF_VIEW_MM` over the matrix (0.45 mm
    at 512 px), so a small test matrix still shows a whole head's field of view.
    """

    position_mm: tuple[float, float, float]
    orientation: tuple[float, ...] = AXIAL_ORIENTATION
    pixel_spacing_mm: tuple[float, float] | None = None
    slice_thickness_mm: float = 5.0


#: Field of view of a written slice whose geometry gives no pixel spacing (a routine head CT's).
HEAD_FIELD_OF_VIEW_MM = 230.4


def hu_to_stored(hu: np.ndarray, intercept: float = -1024.0, slope: float = 1.0) -> np.ndarray:
    """HU to int16 stored values for ``HU = stored * slope + intercept`` (clipped to int16)."""
    stored = np.rint((np.asarray(hu, np.float64) - intercept) / slope)
    return np.clip(stored, -32768, 32767).astype(np.int16)


def build_ct_dataset(
    hu: np.ndarray,
    *,
    sop_instance_uid: str,
    series_uid: str,
    study_uid: str,
    geometry: SliceGeometry,
    instance_number: int,
    intercept: float = -1024.0,
    window_center_width: tuple[float, float] = (40.0, 80.0),
    compress_rle: bool = False,
    patient_id: str = "SYNTHETIC",
) -> Dataset:
    """A CT image data set for one slice of HU values ``(rows, cols)``.

    ``patient_id`` is written as (0010,0020) Patient ID; pass made-up values only.
    """
    stored = hu_to_stored(hu, intercept)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    with warnings.catch_warnings():
        # RSNA-style IDs ("ID_<hex>") are not valid UIDs; writing them is the point.
        warnings.filterwarnings("ignore", message="Invalid value for VR UI")
        meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["ich-edge"])
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Invalid value for VR UI")
        ds.SOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CT"
    ds.PatientName = "Phantom^Synthetic"
    ds.PatientID = str(patient_id)
    ds.InstanceNumber = int(instance_number)
    ds.ImagePositionPatient = [float(v) for v in geometry.position_mm]
    ds.ImageOrientationPatient = [float(v) for v in geometry.orientation]
    spacing = geometry.pixel_spacing_mm or (HEAD_FIELD_OF_VIEW_MM / stored.shape[0], HEAD_FIELD_OF_VIEW_MM / stored.shape[1])
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.SliceThickness = float(geometry.slice_thickness_mm)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = float(intercept)
    ds.RescaleSlope = 1.0
    ds.RescaleType = "HU"
    ds.WindowCenter = float(window_center_width[0])
    ds.WindowWidth = float(window_center_width[1])
    ds.PixelData = stored.tobytes()
    if compress_rle:
        ds.compress(RLELossless, stored)
    return ds


def write_dataset_atomic(ds: Dataset, path: str | Path) -> None:
    """Write ``ds`` to ``path`` through a temporary file in the same folder, then rename."""
    with atomic_output(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Invalid value for VR UI")
        pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
