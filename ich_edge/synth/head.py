"""Render the whole phantom head at a set of points: vault, scalp, skull base, face, brain.

The vault is a shell around the cranial cavity measured by the radial distance ``d_cav``
to the inner table: inner table, diploe, outer table, then the scalp (galea or the
temporalis muscle over the temples, subcutaneous fat, skin). It stops where the skull-base
floor takes over (:mod:`.skullbase`); the brain fills the cavity (:mod:`.brain`).
"""

from __future__ import annotations

import numpy as np

from ich_edge.synth import brain, skullbase
from ich_edge.synth.anatomy import HU_AIR, Anatomy, Tissue, cavity_distance
from ich_edge.synth.pose import Points
from ich_edge.synth.shapes import F32, ellipsoid_q

SHELL_MAX_MM = 40.0  # skull (<= 16 mm) plus scalp with temporalis (<= 20 mm) fit inside
FRONTAL_SINUS_BULGE_MM = 6.0
FRONTAL_SINUS_Z_MM = -16.0


def skull_thickness(pts: Points, root_q: np.ndarray, anatomy: Anatomy) -> np.ndarray:
    """Vault thickness in mm: thick at the occipital protuberance, thin over the temporal
    squama and the cerebellar fossae."""
    ax, ay, az_up, _ = anatomy.semi_mm
    nx = np.abs(pts.x) / (root_q * F32(ax))
    ny = pts.y / (root_q * F32(ay))
    nz = pts.z / (root_q * F32(az_up))
    temporal = np.clip((nx - F32(0.72)) / F32(0.25), 0.0, 1.0) * np.clip(F32(0.55) - nz, 0.0, 0.5) * F32(2.0)
    protuberance = np.clip((ny - F32(0.75)) / F32(0.2), 0.0, 1.0) * np.clip(F32(1.0) - np.abs(nz + F32(0.3)) / F32(0.25), 0.0, 1.0)
    fossae = np.clip((ny - F32(0.2)) / F32(0.3), 0.0, 1.0) * np.clip((F32(-0.45) - nz) / F32(0.2), 0.0, 1.0)
    scale = F32(1.0) - F32(0.5) * temporal + F32(0.35) * protuberance - F32(0.4) * fossae
    thickness = F32(anatomy.skull_mm) * scale
    if anatomy.frontal_sinus_mm:  # the frontal bone bulges around the sinus
        thickness = thickness + F32(FRONTAL_SINUS_BULGE_MM) * _frontal_sinus_weight(pts, ny, anatomy)
    return thickness


def _frontal_sinus_weight(pts: Points, ny: np.ndarray, anatomy: Anatomy) -> np.ndarray:
    width = F32(anatomy.frontal_sinus_mm + 8.0)
    around = np.exp(-((pts.x / width) ** 2) - ((pts.z - F32(FRONTAL_SINUS_Z_MM)) / F32(14.0)) ** 2)
    return around * np.clip((-ny - F32(0.75)) / F32(0.15), 0.0, 1.0)


def frontal_sinus(pts: Points, d_mm: np.ndarray, thickness_mm: np.ndarray, anatomy: Anatomy) -> np.ndarray:
    """Air of the frontal sinus, between the tables of the low frontal bone."""
    if not anatomy.frontal_sinus_mm:
        return np.zeros(d_mm.shape, bool)
    q = ellipsoid_q(pts, (0.0, -80.0, FRONTAL_SINUS_Z_MM), (anatomy.frontal_sinus_mm, 25.0, 11.0))
    between = (d_mm > F32(anatomy.inner_table_mm + 0.3)) & (d_mm < thickness_mm - F32(anatomy.outer_table_mm + 0.3))
    return (q < 1) & between


def scalp_layers(pts: Points, root_q: np.ndarray, anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """(galea or temporalis thickness, total scalp thickness) in mm."""
    ax, ay, az_up, _ = anatomy.semi_mm
    nx = np.abs(pts.x) / (root_q * F32(ax))
    ny = pts.y / (root_q * F32(ay))
    nz = pts.z / (root_q * F32(az_up))
    temple = np.clip((nx - F32(0.6)) / F32(0.3), 0.0, 1.0) * np.clip((F32(0.45) - nz) / F32(0.3), 0.0, 1.0)
    temple = temple * np.clip((F32(0.35) - ny) / F32(0.3), 0.0, 1.0)
    muscle = F32(1.0) + F32(anatomy.temporalis_mm) * temple
    return muscle, muscle + F32(anatomy.scalp_fat_mm) + F32(3.0)


def shell_hu(d_mm: np.ndarray, thickness_mm, muscle_mm, scalp_mm, anatomy: Anatomy) -> np.ndarray:
    """HU of the vault and scalp layers at radial distance ``d_mm >= 0`` outside the cavity."""
    hu = anatomy.hu
    outer_start = thickness_mm - F32(anatomy.outer_table_mm)
    out = np.full(d_mm.shape, HU_AIR, np.float32)
    out[d_mm < thickness_mm + scalp_mm] = hu["skin"]
    out[d_mm < thickness_mm + scalp_mm - F32(3.0)] = hu["scalp_fat"]
    out[d_mm < thickness_mm + muscle_mm] = hu["muscle"]
    out[d_mm < thickness_mm] = hu["cortical"]
    out[(d_mm >= F32(anatomy.inner_table_mm)) & (d_mm < outer_start)] = hu["diploe"]
    return out


def render_tissue(pts: Points, anatomy: Anatomy) -> Tissue:
    """Render the head at ``pts`` (head frame): HU and anatomical fields, see :class:`Tissue`."""
    tissue = Tissue(pts.shape)
    d_cav, root_q = cavity_distance(pts, anatomy)
    tissue.d_cav = d_cav
    floor = skullbase.floor_depth(pts, anatomy)
    tissue.floor_mm, tissue.floor_thickness_mm = floor.depth_mm, floor.thickness_mm

    # The vault and scalp lie within SHELL_MAX_MM outside the cavity: evaluate them there only.
    ring = (d_cav >= 0) & (d_cav < F32(SHELL_MAX_MM)) & (floor.depth_mm < floor.thickness_mm)
    thickness = np.zeros(pts.shape, np.float32)
    vault = np.zeros(pts.shape, bool)
    if ring.any():
        sub = Points(pts.x[ring], pts.y[ring], pts.z[ring])
        d = d_cav[ring]
        thick = skull_thickness(sub, root_q[ring], anatomy)
        muscle, scalp = scalp_layers(sub, root_q[ring], anatomy)
        inside = d < thick + scalp
        values = np.where(inside, shell_hu(d, thick, muscle, scalp, anatomy), tissue.hu[ring])
        tissue.hu[ring] = np.where(frontal_sinus(sub, d, thick, anatomy), F32(HU_AIR), values)
        thickness[ring] = thick
        vault[ring] = inside
    tissue.bone = vault & (d_cav < thickness)

    tissue.cavity = ((d_cav < 0) & (floor.depth_mm < 0)) | skullbase.spinal_canal(pts)
    skullbase.render_face(pts, anatomy, tissue, floor, vault, thickness)

    tissue.surface = (pts.x / root_q, pts.y / root_q, pts.z / root_q)
    tissue.depth_mm = np.minimum(-d_cav, -floor.depth_mm) - F32(anatomy.csf_mm)
    brain.render_brain(pts, anatomy, tissue)
    return tissue
