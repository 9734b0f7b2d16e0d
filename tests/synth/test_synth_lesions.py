"""Each subtype lies where its anatomy says, and slice labels follow the masks."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from ich_edge import LABELS, SUBTYPES
from ich_edge.synth import MIN_LESION_AREA_MM2, SynthConfig, plan_study, render_slice
from ich_edge.synth.lesions import Epidural, Subdural, inside_bone_mm
from ich_edge.synth.scenario import SCENARIOS

from synth_helpers import dilate, find_study

CONFIG = SynthConfig(studies=1, seed=11, matrix_px=128, workers=1)


WHERE = {"subdural": lambda les: isinstance(les, Subdural) and not les.along_falx}


@functools.lru_cache(maxsize=None)
def _rendered(subtype: str):
    """(plan, all slices, positive slices) of the first study with ``subtype`` (noise-free)."""
    plan = plan_study(CONFIG, find_study(CONFIG, subtype, where=WHERE.get(subtype)))
    slices = [render_slice(plan, k, noise=False) for k in range(plan.num_slices)]
    positive = [s for s in slices if s.labels[SUBTYPES.index(subtype)]]
    assert positive, f"the {subtype} bleed should be visible"
    return plan, slices, positive


def _touches_inner_table(s, mask) -> bool:
    return bool((dilate(mask, 2) & s.tissue.bone).any())


def test_epidural_is_a_lens_against_the_inner_table_within_one_bone():
    plan, _, positive = _rendered("epidural")
    lesion = next(les for les in plan.lesions if isinstance(les, Epidural))
    for s in positive:
        mask = s.masks["epidural"]
        assert _touches_inner_table(s, mask)
        assert s.tissue.d_cav[mask].max() <= 0 and s.tissue.d_cav[mask].min() >= -lesion.thickness_mm
        inside = inside_bone_mm(lesion.bone, lesion.side, *(axis[mask] for axis in s.tissue.surface))
        assert inside.min() >= 0, "an epidural bleed must not cross a suture"
    thickest = max(-s.tissue.d_cav[s.masks["epidural"]].min() for s in positive)
    assert thickest > 0.5 * lesion.thickness_mm


def test_subdural_follows_the_convexity_on_one_side():
    plan, _, positive = _rendered("subdural")
    lesion = next(les for les in plan.lesions if isinstance(les, Subdural))
    for s in positive:
        mask = s.masks["subdural"]
        assert _touches_inner_table(s, mask)
        assert np.all(s.tissue.surface[0][mask] * lesion.side > 0), "stops at the midline"
    assert max(s.masks["subdural"].sum() for s in positive) * plan.pixel_mm**2 > 150.0


def test_intraventricular_blood_is_inside_the_ventricles():
    _, _, positive = _rendered("intraventricular")
    for s in positive:
        mask = s.masks["intraventricular"]
        assert np.all(s.tissue.ventricle_id[mask] > 0)


def test_subarachnoid_blood_is_in_csf_spaces():
    _, _, positive = _rendered("subarachnoid")
    for s in positive:
        mask = s.masks["subarachnoid"]
        assert np.all(s.tissue.csf_kind[mask] > 0)
        assert np.all(s.tissue.cavity[mask])


def test_intraparenchymal_blood_is_dense_with_an_edema_rim():
    _, _, positive = _rendered("intraparenchymal")
    best = max(positive, key=lambda s: s.masks["intraparenchymal"].sum())
    mask = best.masks["intraparenchymal"]
    assert np.all(best.tissue.cavity[mask])
    assert 45.0 <= np.median(best.hu[mask]) <= 92.0
    rim = dilate(mask, 2) & ~mask & (best.tissue.csf_kind == 0) & (best.tissue.ventricle_id == 0)
    assert np.median(best.hu[rim]) < np.median(best.hu[mask]) - 25.0


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_slice_labels_follow_mask_area(subtype):
    plan, slices, _ = _rendered(subtype)
    index = LABELS.index(subtype)
    for s in slices:
        area = s.masks[subtype].sum() * plan.pixel_mm**2
        assert s.labels[index] == (area >= MIN_LESION_AREA_MM2)
        assert s.labels[-1] == s.labels[:-1].max()
    flags = [int(s.masks[subtype].any()) for s in slices]
    first, last = flags.index(1), len(flags) - 1 - flags[::-1].index(1)
    assert last > first  # a 3-D lesion: its blood shows on consecutive slices
    assert sum(flags[first : last + 1]) >= 0.5 * (last - first + 1)
    if subtype in ("epidural", "subdural", "intraparenchymal", "subarachnoid"):
        assert 50.0 <= np.median(np.concatenate([s.hu[s.masks[subtype]] for s in slices])) <= 92.0


def test_each_subtype_is_common_among_positive_studies():
    counts = dict.fromkeys(SUBTYPES, 0)
    positives = 0
    for index in range(300):
        plan = plan_study(CONFIG, index)
        present = {les.subtype for les in plan.lesions}
        positives += bool(present)
        for subtype in present:
            counts[subtype] += 1
    assert 0.4 * 300 < positives < 0.6 * 300
    for subtype, count in counts.items():
        assert 0.18 <= count / positives <= 0.40, (subtype, count / positives)
    assert abs(sum(share for share, _ in SCENARIOS.values()) - 1.0) < 1e-9


def test_negative_studies_have_hard_negatives():
    kinds = set()
    dense_sinus = 0
    for index in range(40):
        plan = plan_study(CONFIG, index)
        kinds |= {calc.kind for calc in plan.calcifications}
        dense_sinus += plan.anatomy.hu["sinus"] >= 58
        assert plan.streaks, "every study has beam-hardening streaks near the petrous bones"
    assert {"choroid plexus", "pineal"} <= kinds
    assert 4 <= dense_sinus <= 24


def test_layering_blood_has_a_horizontal_fluid_level():
    """Supine patient: blood settles towards scanner +y, so its top is an image row."""
    config = SynthConfig(studies=1, seed=12, matrix_px=128, workers=1)
    index = find_study(config, "intraventricular", where=lambda les: not les.cast_ids and les.level_mm is not None)
    plan = plan_study(config, index)
    lesion = next(les for les in plan.lesions if les.subtype == "intraventricular")
    checked = 0
    for k in range(plan.num_slices):
        s = render_slice(plan, k, noise=False)
        mask = s.masks["intraventricular"]
        if mask.sum() < 3:
            continue
        level_row = np.nonzero(mask)[0].min()
        ventricle = np.isin(s.tissue.ventricle_id, lesion.ventricle_ids)
        below = ventricle.copy()
        below[: level_row + 2] = False  # one row of tolerance for the plane's tilt within a pixel
        assert np.all(mask[below]), "every ventricle pixel below the level holds blood"
        checked += 1
    assert checked >= 1
