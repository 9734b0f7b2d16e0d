"""DICOM reading and writing for head CT.

Public API::

    scan = find_series(path)        # CT series under a file or folder, headers only
    series = scan.series[0]         # slices sorted from the bottom of the head to the top
    loaded = series.load(Preprocess())
    hu = read_hu("ID_000012eaf.dcm")  # one slice in Hounsfield units
"""

from ich_edge.dicom.pixels import AIR_HU
from ich_edge.dicom.reader import SliceInfo, patient_pseudonym, read_dataset, read_hu, read_slice_info
from ich_edge.dicom.series import (
    HeaderScan,
    LoadedSeries,
    ScanResult,
    Series,
    find_series,
    group_series,
    list_files,
    read_headers,
)

__all__ = [
    "AIR_HU",
    "HeaderScan",
    "LoadedSeries",
    "ScanResult",
    "Series",
    "SliceInfo",
    "find_series",
    "group_series",
    "list_files",
    "patient_pseudonym",
    "read_dataset",
    "read_headers",
    "read_hu",
    "read_slice_info",
]
