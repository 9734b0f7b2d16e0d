"""Which CT series ``prepare`` keeps and ``predict`` judges: localizers, fragments, reformats,
series mixing patients, mirrored or rotated images, thin slices and fields of view that are
not a head's are left out.

RSNA's training set holds axial head series only, but a hospital export or another data set
also holds scouts ((0008,0008) Image Type ``...\\LOCALIZER``, one to three images), short
fragments and sagittal/coronal reformats. Training on them would teach the model images it
never sees at the edge, so prepare leaves them out and the problems file says why. For the
same reason ``predict`` does not judge them (:data:`JUDGED`: the same rules, except that a
short series is left to predict's coverage rule, which calls it INCOMPLETE), and ``inspect``
flags them. A series whose slices carry more than one (0010,0020) Patient ID is two
patients' images under one series: left out everywhere.

The acquisition the model reads is the routine axial head CT: slices 2.5-5 mm apart and
thick (old protocols up to 10 mm) in a 200-250 mm field of view. A thin reconstruction
(0.6-1.25 mm, often exported beside the 5 mm series) puts 4-8 times fewer millimetres of
head into each window of the recurrent head and shows noisier slices; a targeted field of
view (part of the head, magnified) or a body-sized one (a trauma scan, the head small in the
frame) shows the head at a scale the model never saw after the resize to its input size.
Neither is what the model was validated on, so neither is judged: the reason says which
reconstruction to send instead. Nor is a contrast-enhanced series ((0018,0010) Contrast/Bolus
Agent names an agent; a stroke protocol's CT angiography often sits beside the plain scan):
contrast in vessels, venous sinuses and enhancing tissue is as bright as fresh blood, and the
model was trained on non-contrast head CT (RSNA 2019's series are all non-contrast).

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

#: Thinnest slice spacing (along the slice normal, from (0020,0032)) and (0018,0050) Slice
#: Thickness, in mm, of a series the model reads; thinner series are left out. (Too wide a
#: spacing is a coverage problem: :mod:`ich_edge.runtime.completeness`.)
MIN_SLICE_MM = 2.0

#: Field of view in mm, each side (Columns x column spacing, Rows x row spacing of (0028,0030)
#: Pixel Spacing): a head reconstruction is 180-300 mm; outside it a series is left out.
FIELD_OF_VIEW_MM_RANGE = (160.0, 320.0)

#: What a reason outside those ranges asks for.
SEND_INSTEAD = "send the routine axial head reconstruction (5 mm slices, 200-250 mm field of view)"

#: (0018,0010) Contrast/Bolus Agent values that say no agent was given, compared upper case with
#: everything but A-Z and 0-9 removed (``"No contrast"`` -> ``NOCONTRAST``, ``"N/A"`` -> ``NA``).
NO_CONTRAST_WORDS = ("", "NONE", "NO", "N", "NOCONTRAST", "NONCONTRAST", "WITHOUT", "WITHOUTCONTRAST", "NA", "NIL", "0")

#: What a contrast-enhanced series' reason asks for.
CONTRAST_INSTEAD = "send the series scanned before contrast (the non-contrast head CT)"


def names_contrast_agent(text: str | None) -> bool:
    """True when a (0018,0010) Contrast/Bolus Agent value names an agent (missing or a word of
    :data:`NO_CONTRAST_WORDS`: False)."""
    if text is None:
        return False
    return "".join(c for c in str(text).upper() if "A" <= c <= "Z" or "0" <= c <= "9") not in NO_CONTRAST_WORDS


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
    min_slice_mm : leave out series whose slice spacing or Slice Thickness (each checked
        when known) is thinner than this, in mm; None checks neither.
    field_of_view_mm_range : (low, high) field of view in mm, each side (checked when Pixel
        Spacing is given); None does not check it.
    drop_contrast : leave out series with a slice whose (0018,0010) Contrast/Bolus Agent names
        an agent (:func:`names_contrast_agent`).
    """

    min_slices: int = 3
    drop_localizers: bool = True
    max_tilt_deg: float = 45.0
    max_slice_thickness_mm: float | None = None
    max_axis_turn_deg: float = 45.0
    min_slice_mm: float | None = MIN_SLICE_MM
    field_of_view_mm_range: tuple[float, float] | None = FIELD_OF_VIEW_MM_RANGE
    drop_contrast: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.min_slices, bool) or not isinstance(self.min_slices, int) or self.min_slices < 1:
            raise ConfigError(f"min_slices must be an integer >= 1, got {self.min_slices!r}")
        if not 0.0 < self.max_tilt_deg <= 90.0:
            raise ConfigError(f"max_tilt_deg must be in (0, 90], got {self.max_tilt_deg}")
        if not 0.0 < self.max_axis_turn_deg <= 180.0:
            raise ConfigError(f"max_axis_turn_deg must be in (0, 180], got {self.max_axis_turn_deg}")
        if self.max_slice_thickness_mm is not None and not self.max_slice_thickness_mm > 0:
            raise ConfigError(f"max_slice_thickness_mm must be > 0 or None, got {self.max_slice_thickness_mm}")
        if self.min_slice_mm is not None and not self.min_slice_mm > 0:
            raise ConfigError(f"min_slice_mm must be > 0 or None, got {self.min_slice_mm}")
        bounds = self.field_of_view_mm_range
        if bounds is not None and not (len(bounds) == 2 and 0.0 < bounds[0] < bounds[1]):
            raise ConfigError(f"field_of_view_mm_range must be (low, high) with 0 < low < high, or None; got {bounds!r}")

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
        enhanced = sum(names_contrast_agent(info.contrast_agent) for info in series.slices) if self.drop_contrast else 0
        if enhanced:
            return (f"contrast-enhanced: (0018,0010) Contrast/Bolus Agent names an agent on {enhanced} of "
                    f"{series.num_slices} slices; contrast is as bright as fresh blood and the model was trained on "
                    f"non-contrast head CT; {CONTRAST_INSTEAD}")
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
        return self._acquisition_problem(series)

    def _acquisition_problem(self, series: Series) -> str | None:
        """Why the slices or the field of view are not a routine head reconstruction's, or None:
        the series' slice spacing, then each slice's Slice Thickness, then each slice's field of view."""
        low = self.min_slice_mm
        if low is not None:
            spacing = series.slice_spacing_mm
            if spacing is not None and spacing < low:
                return (f"thin slices: {spacing:.2f} mm apart ((0020,0032) Image Position), under the {low:g} mm the "
                        f"model reads; {SEND_INSTEAD}")
            for info in series.slices:
                if info.slice_thickness_mm is not None and info.slice_thickness_mm < low:
                    return (f"thin slices: (0018,0050) Slice Thickness {info.slice_thickness_mm:g} mm, under the {low:g} mm "
                            f"the model reads; {SEND_INSTEAD}")
        if self.field_of_view_mm_range is not None:
            low, high = self.field_of_view_mm_range
            for info in series.slices:
                if info.pixel_spacing_mm is None:
                    continue
                width, height = info.columns * float(info.pixel_spacing_mm[1]), info.rows * float(info.pixel_spacing_mm[0])
                if not (low <= width <= high and low <= height <= high):
                    return (f"field of view {width:.0f} x {height:.0f} mm (Columns and Rows times (0028,0030) Pixel "
                            f"Spacing), outside the {low:g}-{high:g} mm of a head reconstruction: the head would be shown "
                            f"at another scale than the model was trained on; {SEND_INSTEAD}")
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
