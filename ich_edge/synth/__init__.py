"""Synthetic head-CT phantom studies with the five hemorrhage subtypes (``ich-edge synth``).

No real scans can be shipped, so the toolkit generates studies that look like head CT
(skull, brain, ventricles, sulci, skull base; HU from the DOMAIN.md table; tilt, noise and
partial volume) with bleeds of realistic morphology and hard negatives, in the RSNA 2019
layout. Public API::

    from ich_edge.synth import SynthConfig, write_synth_set, plan_study, render_slice

Modules: :mod:`.pose` (geometry), :mod:`.shapes`, :mod:`.anatomy`, :mod:`.head`,
:mod:`.skullbase`, :mod:`.brain` (the head), :mod:`.lesions` and :mod:`.scenario` (bleeds),
:mod:`.mimics` (hard negatives), :mod:`.study` (one study), :mod:`.writer` (the data set on
disk), :mod:`.preview` (PNG montage). Runtime tier: numpy and pydicom only (matplotlib lazily
for the preview).
"""

from ich_edge.synth.config import SynthConfig, parse_slice_range
from ich_edge.synth.study import MIN_LESION_AREA_MM2, RenderedSlice, StudyPlan, plan_study, render_slice
from ich_edge.synth.writer import StudyRecord, write_synth_set

__all__ = [
    "MIN_LESION_AREA_MM2",
    "RenderedSlice",
    "StudyPlan",
    "StudyRecord",
    "SynthConfig",
    "parse_slice_range",
    "plan_study",
    "render_slice",
    "write_synth_set",
]
