"""Synthetic head-CT phantom studies with the five hemorrhage subtypes (``ich-edge synth``).

No real scans can be shipped, so the toolkit generates studies that look like head CT
(skull, brain, ventricles, sulci, skull base; HU from the table in docs/domain.md; tilt, noise and
partial volume) with bleeds of realistic morphology and hard negatives, in the RSNA 2019
layout. Public API::

    from ich_edge.synth import SynthConfig, write_synth_set, plan_study, render_slice

Command line::

    ich-edge synth --out DIR --studies 200 --seed 0        # 512 px, 20-60 slices, 2 workers
    ich-edge synth --out DIR --studies 8 --matrix-px 64 --slices 20-30   # quick tests
    ich-edge synth --preview look.png --seed 0             # montage rendered on the fly
    ich-edge synth --out DIR --preview look.png            # montage of an existing set

Labels: a slice is positive for a subtype when that subtype's blood covers at least
``MIN_LESION_AREA_MM2`` (10 mm^2, about 3 pixels at 128 px over 230 mm) of its central plane;
``any`` is the OR of the subtypes, a study's labels the OR over its slices. Half of the
studies have a bleed and each subtype is in roughly a third of those (see
:mod:`.scenario`), far more than in RSNA 2019, so that a few hundred studies teach all five.

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
