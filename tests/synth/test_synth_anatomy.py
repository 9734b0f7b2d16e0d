"""Tissue densities at known places, partial volume, noise."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge.synth import SynthConfig, plan_study, render_slice
from ich_edge.synth.anatomy import REGION_CEREBRUM
from ich_edge.synth.study import render_points, slice_points


def _slice_at_head_z(plan, z_head: float) -> int:
    """Position of the slice whose plane passes closest to head-frame height z at the centre."""
    centre_z = [plan.pose.to_head(np.array([0.0, plan.pose.center_mm[1], z]))[2] for z in plan.z_positions_mm]
    return int(np.argmin(np.abs(np.array(centre_z) - z_head)))


def _negative(config: SynthConfig):
    return next(p for p in (plan_study(config, i) for i in range(50)) if p.scenario == "negative")


@pytest.fixture(scope="module")
def mid_slice():
    plan = _negative(SynthConfig(studies=1, seed=5, matrix_px=128, workers=1))
    position = _slice_at_head_z(plan, 12.0)
    tissue, _ = render_points(plan, slice_points(plan, position))
    return plan, position, tissue


def test_skull_is_cortical_bone(mid_slice):
    plan, _, tissue = mid_slice
    vault = tissue.bone & (tissue.d_cav >= 0)
    assert vault.sum() > 100
    assert tissue.hu[vault].mean() > 700
    inner_table = vault & (tissue.d_cav < plan.anatomy.inner_table_mm)
    assert inner_table.any() and tissue.hu[inner_table].min() >= 1300  # cortical bone
    assert 400 <= tissue.hu[vault].min() < tissue.hu[inner_table].min()  # the diploe is less dense


def test_brain_csf_ventricles_air(mid_slice):
    _, _, tissue = mid_slice
    parenchyma = tissue.cavity & (tissue.region == REGION_CEREBRUM) & (tissue.csf_kind == 0)
    parenchyma &= (tissue.ventricle_id == 0) & (tissue.depth_mm > 0) & (tissue.hu < 100)  # no calcifications
    low, high = np.percentile(tissue.hu[parenchyma], [2, 98])
    assert 20.0 <= low and high <= 45.0
    ventricles = tissue.ventricle_id > 0
    assert ventricles.sum() > 10
    assert 0.0 <= np.median(tissue.hu[ventricles]) <= 15.0
    csf = tissue.csf_kind > 0
    assert 0.0 <= np.median(tissue.hu[csf]) <= 15.0
    assert tissue.hu[0, 0] == -1000.0 and tissue.hu[-1, -1] == -1000.0


def test_vertex_shows_partial_volume():
    plan = plan_study(SynthConfig(studies=1, seed=5, matrix_px=64, workers=1), 0)
    mixed_values = []
    for position in range(plan.num_slices - 4, plan.num_slices):  # the skull cap, cut tangentially
        clean = render_slice(plan, position, noise=False).hu
        central, _ = render_points(plan, slice_points(plan, position))
        mixed_values.append(clean[clean != central.hu])
    values = np.concatenate(mixed_values)
    assert values.size > 20
    # Averaging bone with brain or scalp gives values no single tissue has.
    assert np.any((values > 150) & (values < 600))


def test_noise_is_ct_like_at_full_size():
    plan = plan_study(SynthConfig(studies=1, seed=5, matrix_px=512, workers=1), 0)
    position = _slice_at_head_z(plan, 20.0)
    noisy, clean = render_slice(plan, position), render_slice(plan, position, noise=False)
    brain = (noisy.tissue.region == REGION_CEREBRUM) & (noisy.tissue.depth_mm > 5)
    diff = (noisy.hu - clean.hu)[brain]
    assert 4.0 * 0.8 <= diff.std() <= 8.0 * 1.2
    assert abs(diff.std() - plan.noise_sd_hu) < 0.2 * plan.noise_sd_hu
    field = noisy.hu - clean.hu
    neighbour = np.corrcoef(field[200:300, 200:300].ravel(), field[200:300, 201:301].ravel())[0, 1]
    assert neighbour > 0.3  # spatially correlated, like reconstructed CT noise


def test_render_is_deterministic():
    plan = plan_study(SynthConfig(studies=1, seed=9, matrix_px=64, workers=1), 2)
    again = plan_study(SynthConfig(studies=1, seed=9, matrix_px=64, workers=1), 2)
    assert plan.slice_ids == again.slice_ids and plan.study_uid == again.study_uid
    np.testing.assert_array_equal(render_slice(plan, 5).hu, render_slice(again, 5).hu)
    other = plan_study(SynthConfig(studies=1, seed=10, matrix_px=64, workers=1), 2)
    assert other.study_uid != plan.study_uid and other.slice_ids != plan.slice_ids
