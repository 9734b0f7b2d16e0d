"""Which CT series ``prepare`` keeps and ``predict`` judges: localizers, fragments, reformats,
series mixing patients and mirrored or rotated images are left out.

RSNA's training set holds axial head series only, but a hospital export or another data set
also holds scouts ((0008,0008) Image Type ``...\\LOCALIZER``, one to three images), short
fragments and sagittal/coronal reformats. Training on them would teach the model images it
never sees at the edge, so prepare leaves them out and the problems file says why. For the
same reason ``predict`` does not judge them (:data:`JUDGED`: the same rules, except that a
short series is left to predict's coverage rule, which calls it INCOMPLETE), and ``inspect``
flags them. A series whose slices carry more than one (0010,0020) Patient ID is two
patients' images under one series: left out everywhere.
Runtime tier: the standard library, numpy and :mod:`ich_edge.dicom`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ich_edge.dicom import Series
from ich_edge.dicom.series import axes_angle_deg, common_orientation, slice_normal
from ich_edge.dicom.write import AXIAL_ORIENTATION
from ich_edge.errors import ConfigError


@dataclass(frozen=True)
class SeriesFilter:
    """Which CT series prepare keeps; the others are skipped with their reason.

    Attributes
    ----------
    min_slices : fewer slices than this is a localizer or a fragment, not a head scan.
    drop_localizers : leave out series whose (0008,0008) Image Type says LOCALIZER.
    max_tilt_deg : leave out series whose slice normal is further than this from the
        head's long axis (sagittal and coronal reformats; gantry tilts stay well below).
    max_slice_thickness_mm : leave out thicker slices; None keeps every thickness.
    max_axis_turn_deg : leave out series whose image rows run further than this from the
        patient's left (+x) or whose columns run further from the back (+y): mirrored or
        rotated images (e.g. ``-1\\0\\0\\0\\1\\0``), which a model trained on the standard axial
        display has never seen (gantry tilts turn the columns by well under 45 degrees).
    """

    min_slices: int = 3
    drop_localizers: bool = True
    max_tilt_deg: float = 45.0
    max_slice_thickness_mm: float | None = None
    max_axis_turn_deg: float = 45.0

    def __post_init__(self) -> None:
        if isinstance(self.min_slices, bool) or not isinstance(self.min_slices, int) or self.min_slices < 1:
            raise ConfigError(f"min_slices must be an integer >= 1, got {self.min_slices!r}")
        if not 0.0 < self.max_tilt_deg <= 90.0:
            raise ConfigError(f"max_tilt_deg must be in (0, 90], got {self.max_tilt_deg}")
        if not 0.0 < self.max_axis_turn_deg <= 180.0:
            raise ConfigError(f"max_axis_turn_deg must be in (0, 180], got {self.max_axis_turn_deg}")
        if self.max_slice_thickness_mm is not None and not self.max_slice_thickness_mm > 0:
            raise ConfigError(f"max_slice_thickness_mm must be > 0 or None, got {self.max_slice_thickness_mm}")

    def reason_to_skip(self, series: Series) -> str | None:
        """Why ``series`` is left out, or None to keep it."""
        if self.drop_localizers and series.image_type and "LOCALIZER" in series.image_type:
            words = "\\".join(series.image_type)
            return f"localizer ((0008,0008) Image Type {words})"
        if series.num_slices < self.min_slices:
            return f"{series.num_slices} slice(s), fewer than {self.min_slices}: a localizer or fragment, not a head scan"
        patients = {info.patient_uid for info in series.slices if info.patient_uid}
        if len(patients) > 1:
            return f"its slices carry {len(patients)} different (0010,0020) Patient IDs: images of several patients in one series"
        normal = slice_normal(series.slices, [])
        tilt = math.degrees(math.acos(min(1.0, abs(float(normal[2])))))
        if tilt > self.max_tilt_deg:
            return f"not axial: slice normal {tilt:.0f} deg from the head axis (more than {self.max_tilt_deg:g}); a reformat?"
        turned = self._turned_axes(series)
        if turned:
            return turned
        thickness = series.slice_thickness_mm
        if self.max_slice_thickness_mm is not None and thickness is not None and thickness > self.max_slice_thickness_mm:
            return f"(0018,0050) Slice Thickness {thickness:g} mm, more than {self.max_slice_thickness_mm:g} mm"
        return None

    def _turned_axes(self, series: Series) -> str | None:
        """Why the image axes are not the standard axial display's, or None."""
        cosines = common_orientation(series.slices, [])
        if cosines is None:
            return None
        if axes_angle_deg(cosines, np.array(AXIAL_ORIENTATION)) <= self.max_axis_turn_deg:
            return None
        shown = "\\".join(f"{v:g}" for v in cosines)
        return (f"image axes mirrored or rotated: (0020,0037) Image Orientation (Patient) {shown}, where the model "
                "was trained on rows running to the patient's left and columns to the back (1\\0\\0\\0\\1\\0); "
                "export the series in the standard axial orientation")


#: The rules ``predict`` and ``inspect`` apply before a verdict: prepare's defaults, except that
#: a short series (a single .dcm file included) is judged and called INCOMPLETE by predict's
#: coverage rule (:mod:`ich_edge.runtime.completeness`) instead of being left out.
JUDGED = SeriesFilter(min_slices=1)
