"""What part of the head a series shows the model, and when a negative cannot be trusted.

A model that saw no bleed in the slices it was given says nothing about the slices it was
not given. :func:`series_coverage` measures, on the slices that were actually decoded and
predicted, what :mod:`ich_edge.runtime.predict` needs to decide whether a NEGATIVE can
stand (the rule is written down in that module's docstring):

* the number of slices against one window of the model's recurrent head;
* the extent along the slice normal, bottom slice to top slice plus one median spacing
  (an adult head, skull base to vertex, spans about 140-160 mm);
* the largest step between neighbouring slices against the median spacing, with the gap
  rule of :mod:`ich_edge.dicom.series` (the one ``ich-edge inspect`` reports gaps with);
* the median spacing against :data:`MAX_SLICE_SPACING_MM` (slices further apart leave the
  head between them unseen; too thin a spacing is not judged at all:
  :mod:`ich_edge.ingest.series_filter`);
* whether slice positions are known at all.

Positions and the slice normal come from :mod:`ich_edge.dicom.series` (the owner of slice
geometry); nothing here re-reads DICOM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ich_edge.dicom.series import GAP_FACTOR, Series, slice_normal

#: Extent along the slice normal below which a series does not show enough of the head for
#: a negative verdict (an adult head, skull base to vertex, spans about 140-160 mm).
MIN_HEAD_EXTENT_MM = 100.0

#: Median slice spacing above which a negative cannot stand: routine head series are 2.5-5 mm
#: (old protocols 10 mm); slices further apart leave the head between them unseen.
MAX_SLICE_SPACING_MM = 10.0


@dataclass(frozen=True)
class Coverage:
    """What the predicted slices of one series cover.

    Attributes
    ----------
    num_slices : slices the model saw.
    window_slices : slices in one window of the model.
    extent_mm : bottom to top along the slice normal plus one median spacing (a single
        slice: its thickness, when the header gives it); None without positions.
    spacing_mm : median step between neighbouring slices; None with fewer than two.
    largest_gap_mm : largest step between neighbouring slices; None with fewer than two.
    reasons : why a negative verdict is unreliable here; empty when coverage is complete.
    reported : those of ``reasons`` that the series' own problems already state (a gap
        :mod:`ich_edge.dicom.series` found between the slices of the scan), so a problem
        list need not say it twice.
    """

    num_slices: int
    window_slices: int
    extent_mm: float | None
    spacing_mm: float | None
    largest_gap_mm: float | None
    reasons: tuple[str, ...]
    reported: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict:
        """The ``coverage`` object of predict's JSON."""
        def mm(value):
            return None if value is None else round(float(value), 2)

        return {
            "complete": self.complete,
            "num_slices": self.num_slices,
            "window_slices": self.window_slices,
            "extent_mm": mm(self.extent_mm),
            "min_extent_mm": MIN_HEAD_EXTENT_MM,
            "spacing_mm": mm(self.spacing_mm),
            "largest_gap_mm": mm(self.largest_gap_mm),
            "reasons": list(self.reasons),
        }


def series_coverage(series: Series, slice_ids: list[str], window_slices: int) -> Coverage:
    """Coverage of the slices ``slice_ids`` of ``series`` (those decoded, bottom to top)."""
    wanted = set(slice_ids)
    infos = [info for info in series.slices if info.sop_instance_uid in wanted]
    reasons: list[str] = []
    reported: list[str] = []
    if len(infos) < window_slices:
        reasons.append(f"{len(infos)} slice{'s' if len(infos) != 1 else ''}, fewer than one window of the model ({window_slices})")
    extent = spacing = largest = None
    if infos and all(info.position_mm is not None for info in infos):
        normal = slice_normal(infos, [])  # its problems are already among the series' problems
        heights = np.sort([float(np.dot(info.position_mm, normal)) for info in infos])
        if len(heights) >= 2:
            steps = np.diff(heights)
            spacing, largest = float(np.median(steps)), float(steps.max())
            extent = float(heights[-1] - heights[0]) + spacing
            if largest > GAP_FACTOR * spacing:
                at = int(np.argmax(steps))
                missing = max(1, round(largest / spacing) - 1)
                reasons.append(
                    f"a {largest:.1f} mm gap between slices {at + 1} and {at + 2} (median spacing {spacing:.1f} mm): "
                    f"about {missing} slice{'s' if missing != 1 else ''} missing"
                )
                if len(infos) == len(series.slices):  # no slice dropped: the scan found this gap
                    reported.append(reasons[-1])
            if spacing > MAX_SLICE_SPACING_MM:
                reasons.append(
                    f"slices {spacing:.1f} mm apart, more than {MAX_SLICE_SPACING_MM:.0f} mm: the head between them was not seen"
                )
        else:
            extent = infos[0].slice_thickness_mm or 0.0
        if extent < MIN_HEAD_EXTENT_MM:
            reasons.append(
                f"covers {extent:.0f} mm along the slice axis, under the {MIN_HEAD_EXTENT_MM:.0f} mm a negative "
                "needs (a head is about 140-160 mm): only part of the head was seen"
            )
    elif infos:
        reasons.append("slice positions (0020,0032) missing: how much of the head the series covers is unknown")
    return Coverage(len(infos), int(window_slices), extent, spacing, largest, tuple(reasons), tuple(reported))
