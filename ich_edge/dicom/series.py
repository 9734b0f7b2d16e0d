"""Finding CT series in a file or folder, ordering their slices, and loading them.

:func:`find_series` reads headers only, so a flat RSNA folder of 750k files is grouped
without decoding pixels; :meth:`Series.load` then reads each slice file once.

Ordering rule: slices are sorted by their (0020,0032) Image Position (Patient) projected on
the slice normal, the cross product of the row and column direction cosines of
(0020,0037) Image Orientation (Patient), turned to point to the head (negated when its z
component is negative: mirrored image axes). In DICOM's patient coordinates (+z towards the
head) ascending order then runs from the bottom of the head to the top, also on tilted
gantries and whichever way the image axes run. A slice whose axes lie more than
:data:`MAX_ORIENTATION_DIFF_DEG` from the series' is skipped. When a position is missing,
the whole series falls back to (0020,0013) Instance Number (``sort_method`` says so, and a
problem is recorded), and without instance numbers to file name order.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ich_edge.dicom.plausibility import COUNT_NAMES, hu_counts, hu_problem, slice_structure_problem
from ich_edge.dicom.reader import SliceInfo, display_name, printable, read_hu, read_slice_info
from ich_edge.errors import (
    DicomError,
    ImplausiblePixelsError,
    NoSeriesError,
    NotCTError,
    SeriesError,
    UnreadableSeriesError,
)

#: A slice whose row or column direction is further than this from the series' most common
#: orientation is another image (a scout, a reformat) filed in the series: skipped.
MAX_ORIENTATION_DIFF_DEG = 5.0

#: Two slices closer than this along the normal are at the same position.
DUPLICATE_TOLERANCE_MM = 0.01
#: A step this many times the median slice spacing is reported as a gap.
GAP_FACTOR = 1.5
_AXIAL_NORMAL = (0.0, 0.0, 1.0)
#: Files per task when headers are read by several processes.
_SCAN_CHUNK_FILES = 256
#: Most pixels one series may decode to (Rows x Columns x slices, checked before decoding):
#: 2048 slices of 512 x 512, 2 GiB of float32 HU; a thin-slice head CT is 200-400 slices.
MAX_SERIES_PIXELS = 2048 * 512 * 512


@dataclass(frozen=True)
class LoadedSeries:
    """Pixels of a series: ``images[i]`` belongs to ``slice_ids[i]``, bottom to top.

    ``images`` is float32 HU ``(N, rows, cols)`` or the stacked transform outputs;
    ``problems`` lists what went wrong while loading (dropped slices); the problems found
    while scanning stay in :attr:`Series.problems`.
    """

    images: np.ndarray
    slice_ids: list[str]
    problems: list[str]


@dataclass(frozen=True)
class Series:
    """One CT series, its slices sorted from the bottom of the head to the top."""

    series_uid: str
    study_uid: str | None
    modality: str
    slices: list[SliceInfo]
    sort_method: str
    slice_spacing_mm: float | None
    pixel_spacing_mm: tuple[float, float] | None
    rows: int
    columns: int
    problems: list[str] = field(default_factory=list)
    patient_uid: str | None = None
    image_type: tuple[str, ...] | None = None
    slice_thickness_mm: float | None = None

    @property
    def slice_ids(self) -> list[str]:
        """(0008,0018) SOP Instance UIDs in slice order."""
        return [info.sop_instance_uid for info in self.slices]

    @property
    def num_slices(self) -> int:
        return len(self.slices)

    def load(self, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> LoadedSeries:
        """Read every slice once, in order, and apply ``transform`` to each slice in HU.

        Parameters
        ----------
        transform : called on each float32 HU slice ``(rows, cols)``, e.g.
            :class:`ich_edge.transforms.Preprocess`; None keeps HU.

        Raises
        ------
        UnreadableSeriesError
            If a slice's pixel module is mis-declared
            (:class:`~ich_edge.errors.ImplausiblePixelsError`) or the series' HU are not
            those of a head (:mod:`ich_edge.dicom.plausibility`): the pixels cannot be
            trusted, so no result may be drawn from them.
        SeriesError
            If the series is larger than :data:`MAX_SERIES_PIXELS`, or no slice can be
            decoded. Slices that fail otherwise (truncated, undecodable) are dropped and
            listed in ``problems``.
        """
        pixels = self.num_slices * self.rows * self.columns
        if pixels > MAX_SERIES_PIXELS:
            raise SeriesError(
                f"series {self.series_uid}: {self.num_slices} slices of {self.rows} x {self.columns} pixels, more than "
                f"{MAX_SERIES_PIXELS // (512 * 512)} slices of 512 x 512; refused before decoding (split the series)"
            )
        images: np.ndarray | None = None
        kept: list[int] = []
        problems: list[str] = []
        implausible: dict[str, list[str]] = {}
        counts = np.zeros(len(COUNT_NAMES))
        for index, info in enumerate(self.slices):
            try:
                hu = read_hu(info.path, label=display_name(info.path))
            except ImplausiblePixelsError as err:
                reason = str(err).removeprefix(f"{display_name(info.path)}: ")
                implausible.setdefault(reason, []).append(display_name(info.path))
                continue
            except DicomError as err:
                problems.append(f"{err}; slice dropped")
                continue
            if hu.shape != (self.rows, self.columns):
                problems.append(
                    f"{display_name(info.path)}: pixels are {hu.shape[0]}x{hu.shape[1]}, the header said "
                    f"{self.rows}x{self.columns}; slice dropped"
                )
                continue
            slice_counts = hu_counts(hu)
            if (structure := slice_structure_problem(slice_counts)) is not None:
                implausible.setdefault(structure, []).append(display_name(info.path))
                continue
            counts += slice_counts
            image = hu if transform is None else np.asarray(transform(hu))
            if images is None:
                images = np.empty((len(self.slices), *image.shape), dtype=image.dtype)
            images[len(kept)] = image
            kept.append(index)
        reasons = [_slices_text(names, reason) for reason, names in implausible.items()]
        if not implausible and (hu_reason := hu_problem(counts)) is not None:
            reasons.append(hu_reason)
        if reasons:
            raise UnreadableSeriesError(f"series {self.series_uid}: UNREADABLE: {' | '.join(reasons)}", tuple(reasons))
        if images is None:
            raise SeriesError(f"series {self.series_uid}: no usable slice ({problems[0]})")
        return LoadedSeries(
            images=images[: len(kept)],
            slice_ids=[self.slices[i].sop_instance_uid for i in kept],
            problems=problems,
        )


def _slices_text(names: list[str], reason: str) -> str:
    """``"3 slices (a.dcm, b.dcm, ...): <reason>"`` for a reason shared by several slices."""
    shown = ", ".join(names[:2]) + (", ..." if len(names) > 2 else "")
    return f"{len(names)} slice{'s' if len(names) != 1 else ''} ({shown}): {reason}"


@dataclass(frozen=True)
class ScanResult:
    """CT series found under a path, and what was skipped on the way."""

    series: list[Series]
    problems: list[str]
    num_files: int


@dataclass(frozen=True)
class HeaderScan:
    """The headers of every file under a path (before grouping into series).

    ``infos`` are the readable slices, ``problems`` the files left out and why, ``base`` the
    folder that file labels in messages are relative to.
    """

    infos: list[SliceInfo]
    problems: list[str]
    num_files: int
    base: Path


def list_files(path: str | os.PathLike) -> list[Path]:
    """Every non-hidden file under a folder, sorted (a file: itself); :class:`NoSeriesError` if none."""
    root = Path(path)
    if root.is_file():
        return [root]
    if root.exists() and not root.is_dir():
        raise NoSeriesError(f"{printable(str(path))}: not a regular file (a FIFO, device or socket); pass a .dcm file or a folder of them")
    if not root.is_dir():
        raise NoSeriesError(f"{printable(str(path))}: no such file or folder; pass a .dcm file or a folder of them")
    files = _list_files(root)
    if not files:
        raise NoSeriesError(f"{path}: the folder holds no files; pass a .dcm file or a folder of them")
    return files


def read_headers(
    path: str | os.PathLike,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    files: list[Path] | None = None,
) -> HeaderScan:
    """Read the header of every file under ``path`` (no pixels), in ``workers`` processes.

    ``progress(done, total)`` is called as files are read (every chunk of files when pooled);
    ``files`` (from :func:`list_files`) saves listing the folder again.
    """
    root = Path(path)
    files = list_files(root) if files is None else files
    base = root.parent if root.is_file() else root
    if root.is_file():
        return HeaderScan([read_slice_info(root, label=root.name)], [], 1, base)  # an unusable single file raises
    jobs = [(file, _relative(file, base)) for file in files]
    results: list[tuple[SliceInfo | None, str | None]] = []
    if workers > 1 and len(jobs) >= 2 * _SCAN_CHUNK_FILES:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(_info_or_problem, jobs, chunksize=_SCAN_CHUNK_FILES):
                results.append(result)
                if progress and len(results) % _SCAN_CHUNK_FILES == 0:
                    progress(len(results), len(jobs))
    else:
        for job in jobs:
            results.append(_info_or_problem(job))
            if progress and len(results) % _SCAN_CHUNK_FILES == 0:
                progress(len(results), len(jobs))
    if progress:
        progress(len(results), len(jobs))
    infos = [info for info, _ in results if info is not None]
    problems = [problem for info, problem in results if info is None]
    return HeaderScan(infos, problems, len(files), base)


def group_series(headers: HeaderScan, path: str | os.PathLike | None = None) -> ScanResult:
    """Group read headers into CT series, each sorted bottom to top (see :func:`find_series`)."""
    path = headers.base if path is None else path
    problems = list(headers.problems)
    groups = _group(headers.infos, headers.base, problems)
    series: list[Series] = []
    non_ct: Counter[str] = Counter()
    for key in sorted(groups):
        built = _build_series(key, groups[key], problems, non_ct)
        if built is not None:
            series.append(built)
    if not series:
        if non_ct:
            found = ", ".join(f"{modality} ({count} series)" for modality, count in sorted(non_ct.items()))
            raise NotCTError(f"{path}: no CT series; found {found}. ich-edge reads head CT only")
        first = problems[0] if problems else "no slice"
        raise NoSeriesError(
            f"{path}: no usable DICOM slice among {headers.num_files} files (first problem: {first})"
        )
    return ScanResult(series=series, problems=problems, num_files=headers.num_files)


def find_series(path: str | os.PathLike, workers: int = 1) -> ScanResult:
    """Group the DICOM files under ``path`` into CT series, each sorted bottom to top.

    Parameters
    ----------
    path : one file, a series folder, or a folder of mixed series (searched recursively;
        hidden files are skipped). Only headers are read.
    workers : processes reading headers (the result does not depend on it); worth it for
        folders of thousands of files, where parsing headers is the cost.

    Raises
    ------
    NoSeriesError
        If ``path`` does not exist or holds no usable DICOM slice.
    NotCTError
        If DICOM images are found but none is CT.
    NotDicomError, NoPixelDataError, PixelDataError
        If ``path`` is a single file that cannot be used.
    """
    return group_series(read_headers(path, workers=workers), path)


def _info_or_problem(job: tuple[Path, str]) -> tuple[SliceInfo | None, str | None]:
    """``read_slice_info`` for a process pool: the header, or the problem text."""
    file, label = job
    try:
        return read_slice_info(file, label=label), None
    except DicomError as err:
        return None, f"{err}; skipped"


def _list_files(root: Path) -> list[Path]:
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        files.extend(Path(folder) / name for name in sorted(names) if not name.startswith("."))
    return files


def _relative(path: Path, base: Path) -> str:
    try:
        return printable(str(path.relative_to(base)))
    except ValueError:
        return display_name(path)


def _group(infos: list[SliceInfo], base: Path, problems: list[str]) -> dict[str, list[SliceInfo]]:
    """Slices by (0020,000E) Series Instance UID; files without one by their folder."""
    groups: dict[str, list[SliceInfo]] = {}
    orphans: Counter[str] = Counter()
    for info in infos:
        key = info.series_uid
        if key is None:
            key = f"folder:{_relative(info.path.parent, base) if info.path.parent != base else '.'}"
            orphans[key] += 1
        groups.setdefault(key, []).append(info)
    for key, count in sorted(orphans.items()):
        problems.append(
            f"{count} files without (0020,000E) Series Instance UID in {key[len('folder:'):]}; "
            f"grouped as series {key}"
        )
    return groups


def _build_series(key: str, infos: list[SliceInfo], scan_problems: list[str], non_ct: Counter) -> Series | None:
    """One sorted, consistent series from its slices, or None if it is not CT."""
    problems: list[str] = []
    modalities = Counter(info.modality or "CT" for info in infos)
    if "CT" not in modalities:
        modality = modalities.most_common(1)[0][0]
        non_ct[modality] += 1
        scan_problems.append(f"series {key}: modality {modality}, skipped (ich-edge reads CT only)")
        return None
    others = [info for info in infos if info.modality not in ("CT", None)]
    for info in others:
        problems.append(f"{display_name(info.path)}: modality {info.modality} inside a CT series; skipped")
    infos = [info for info in infos if info.modality in ("CT", None)]
    missing_modality = sum(info.modality is None for info in infos)
    if missing_modality:
        problems.append(f"(0008,0060) Modality missing on {missing_modality} slices; assumed CT")
    infos = _drop_repeated_uids(sorted(infos, key=lambda info: str(info.path)), problems)
    infos, (rows, columns) = _majority_shape(infos, problems)
    infos = _majority_orientation(infos, problems)
    ordered, method, normal = _order(infos, problems)
    spacing_mm = None
    if normal is not None:
        ordered, spacing_mm = _drop_duplicate_positions(ordered, normal, problems)
    _check_consistency(ordered, problems)
    study_uid = Counter(info.study_uid for info in ordered).most_common(1)[0][0]
    patients = Counter(info.patient_uid for info in ordered)
    if len(patients) > 1:
        problems.append(f"the series spans {len(patients)} (0010,0020) Patient IDs; kept the most common")
    image_types = Counter(info.image_type for info in ordered)
    thicknesses = Counter(info.slice_thickness_mm for info in ordered)
    return Series(
        series_uid=key,
        study_uid=study_uid,
        modality="CT",
        slices=ordered,
        sort_method=method,
        slice_spacing_mm=spacing_mm,
        pixel_spacing_mm=ordered[0].pixel_spacing_mm,
        rows=rows,
        columns=columns,
        problems=problems,
        patient_uid=patients.most_common(1)[0][0],
        image_type=image_types.most_common(1)[0][0],
        slice_thickness_mm=thicknesses.most_common(1)[0][0],
    )


def _drop_repeated_uids(infos: list[SliceInfo], problems: list[str]) -> list[SliceInfo]:
    seen: dict[str, SliceInfo] = {}
    for info in infos:
        first = seen.setdefault(info.sop_instance_uid, info)
        if first is not info:
            problems.append(
                f"{display_name(info.path)}: same SOP Instance UID {info.sop_instance_uid} as {display_name(first.path)}; "
                "kept the first"
            )
    return list(seen.values())


def _majority_orientation(infos: list[SliceInfo], problems: list[str]) -> list[SliceInfo]:
    """The slices whose image axes are within :data:`MAX_ORIENTATION_DIFF_DEG` of the most common
    orientation's (and those without one); a scout or reformat filed in the series is skipped."""
    common = common_orientation(infos, [])
    if common is None:
        return infos
    kept = []
    for info in infos:
        turn = None if info.orientation is None else axes_angle_deg(np.asarray(info.orientation, dtype=np.float64), common)
        if turn is not None and turn > MAX_ORIENTATION_DIFF_DEG:
            problems.append(f"{display_name(info.path)}: image axes {turn:.0f} deg from the series' "
                            "(0020,0037) Image Orientation (Patient); slice skipped")
        else:
            kept.append(info)
    return kept


def axes_angle_deg(cosines: np.ndarray, common: np.ndarray) -> float:
    """The larger angle (degrees) between two orientations' row directions and their column
    directions (six direction cosines each, as in (0020,0037))."""
    angles = []
    for a, b in ((cosines[:3], common[:3]), (cosines[3:], common[3:])):
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        cos = float(np.dot(a, b)) / norms if norms > 0 else -1.0
        angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    return max(angles)


def _majority_shape(infos: list[SliceInfo], problems: list[str]) -> tuple[list[SliceInfo], tuple[int, int]]:
    shapes = Counter((info.rows, info.columns) for info in infos)
    shape = shapes.most_common(1)[0][0]
    for info in infos:
        if (info.rows, info.columns) != shape:
            problems.append(
                f"{display_name(info.path)}: {info.rows}x{info.columns} pixels, the series is "
                f"{shape[0]}x{shape[1]}; slice skipped"
            )
    return [info for info in infos if (info.rows, info.columns) == shape], shape


def common_orientation(infos: list[SliceInfo], problems: list[str]) -> np.ndarray | None:
    """The six direction cosines of (0020,0037) most slices carry (None when no slice has them)."""
    # Count orientations rounded (scanners write cosines with differing digits), but return
    # the first unrounded orientation of the winning group.
    orientations: Counter[tuple[float, ...]] = Counter()
    exact: dict[tuple[float, ...], tuple[float, ...]] = {}
    for info in infos:
        if info.orientation is not None:
            key = tuple(round(v, 3) for v in info.orientation)
            orientations[key] += 1
            exact.setdefault(key, info.orientation)
    if not orientations:
        problems.append("(0020,0037) Image Orientation (Patient) missing; assumed axial slices")
        return None
    if len(orientations) > 1:
        problems.append(
            f"(0020,0037) Image Orientation (Patient) differs between slices ({len(orientations)} "
            "orientations); positions projected on the most common one"
        )
    return np.array(exact[orientations.most_common(1)[0][0]], dtype=np.float64)


def slice_normal(infos: list[SliceInfo], problems: list[str]) -> np.ndarray:
    """Unit normal of the slices, turned towards the head: row cosines x column cosines of the
    most common orientation, negated when it points to the feet (a mirrored or feet-first
    orientation such as ``-1\\0\\0\\0\\1\\0``), so that ascending order is bottom to top."""
    cosines = common_orientation(infos, problems)
    if cosines is None:
        return np.array(_AXIAL_NORMAL)
    normal = np.cross(cosines[:3], cosines[3:])
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        problems.append("(0020,0037) Image Orientation (Patient) is degenerate; assumed axial slices")
        return np.array(_AXIAL_NORMAL)
    return (normal if normal[2] >= 0 else -normal) / norm


def _order(infos: list[SliceInfo], problems: list[str]) -> tuple[list[SliceInfo], str, np.ndarray | None]:
    """Slices bottom to top, the method used (position, instance_number or file_order), the normal."""
    without_position = sum(info.position_mm is None for info in infos)
    if without_position == 0:
        normal = slice_normal(infos, problems)
        ordered = sorted(infos, key=lambda info: (_height_mm(info, normal), info.instance_number or 0))
        return ordered, "position", normal
    fallback = f"(0020,0032) Image Position (Patient) missing on {without_position} of {len(infos)} slices"
    if all(info.instance_number is not None for info in infos):
        problems.append(
            f"{fallback}; sorted by (0020,0013) Instance Number, which is often not the anatomical "
            "order: check the series"
        )
        return sorted(infos, key=lambda info: info.instance_number), "instance_number", None
    problems.append(f"{fallback} and Instance Number missing too; kept file name order: check the series")
    return list(infos), "file_order", None


def _height_mm(info: SliceInfo, normal: np.ndarray) -> float:
    return float(np.dot(info.position_mm, normal))


def _drop_duplicate_positions(
    ordered: list[SliceInfo], normal: np.ndarray, problems: list[str]
) -> tuple[list[SliceInfo], float | None]:
    """Keep one slice per position; return the kept slices and the median spacing in mm."""
    kept = [ordered[0]]
    heights = [_height_mm(ordered[0], normal)]
    for info in ordered[1:]:
        height = _height_mm(info, normal)
        if height - heights[-1] < DUPLICATE_TOLERANCE_MM:
            problems.append(
                f"{display_name(info.path)}: same position as {display_name(kept[-1].path)} ({height:.2f} mm along "
                "the slice normal); kept the first"
            )
            continue
        kept.append(info)
        heights.append(height)
    if len(kept) < 2:
        return kept, None
    steps = np.diff(heights)
    spacing_mm = float(np.median(steps))
    for index in np.flatnonzero(steps > GAP_FACTOR * spacing_mm):
        problems.append(
            f"gap of {steps[index]:.2f} mm between {display_name(kept[index].path)} and {display_name(kept[index + 1].path)} "
            f"(median spacing {spacing_mm:.2f} mm): slices missing?"
        )
    return kept, spacing_mm


def _check_consistency(ordered: list[SliceInfo], problems: list[str]) -> None:
    studies = {info.study_uid for info in ordered}
    if len(studies) > 1:
        problems.append(f"the series spans {len(studies)} (0020,000D) Study Instance UIDs")
    spacings = {info.pixel_spacing_mm for info in ordered}
    if len(spacings) > 1:
        problems.append(f"(0028,0030) Pixel Spacing differs between slices ({len(spacings)} values)")
    monochrome1 = sum(info.photometric == "MONOCHROME1" for info in ordered)
    if monochrome1:
        problems.append(
            f"{monochrome1} slices are MONOCHROME1; HU taken from the rescale as is "
            "(MONOCHROME1 only inverts the display)"
        )
