"""The brain inside the cranial cavity: cortex and sulci, deep nuclei, ventricles, cisterns.

Everything is drawn in the head frame. The cortex is a gray-matter ribbon along the brain
surface and along the sulci; sulci are the zero set of a smooth random field evaluated on
the inner-table surface (so they run radially inward, 6 to 22 mm deep). Deep structures
(ventricles, basal ganglia, thalami, brainstem, cisterns, the falx's free edge) live in a
frame shifted sideways by ``Anatomy.midline_shift_mm`` (mass effect of a large bleed), the
shift fading towards the vertex where the falx is fixed.
"""

from __future__ import annotations

import numpy as np

from ich_edge.synth.anatomy import (
    CSF_AMBIENT,
    CSF_EXTRA_AXIAL,
    CSF_INTERHEMISPHERIC,
    CSF_NONE,
    CSF_POSTERIOR_FOSSA,
    CSF_SULCUS,
    CSF_SUPRASELLAR,
    CSF_SYLVIAN,
    REGION_BRAINSTEM,
    REGION_CEREBELLUM,
    REGION_CEREBRUM,
    VENT_FOURTH,
    VENT_LEFT_LATERAL,
    VENT_RIGHT_LATERAL,
    VENT_THIRD,
    Anatomy,
    Tissue,
)
from ich_edge.synth.pose import Points
from ich_edge.synth.shapes import F32, ellipsoid_q

CORTEX_MM = 2.8  # gray ribbon at the surface
SULCAL_GRAY_MM = 2.0  # gray flank on each side of a sulcus
CORTICAL_SHELL_MM = 26.0  # sulci are evaluated only this deep
SULCAL_BEND = 0.6
FOLIUM_MM = 4.5  # spacing of the cerebellar folia


def shift_weight(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """How much of the midline shift applies at (y, z): 1 around the ventricles, ~0 at the vertex."""
    return np.exp(-(((z - F32(5.0)) / F32(35.0)) ** 2) - (y / F32(110.0)) ** 2)


def tentorium_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Height of the tentorium: highest at the incisura, sloping down to the back and sides."""
    return F32(-12.0) - F32(0.28) * np.maximum(y - F32(10.0), 0.0) - F32(0.006) * x * x


def infratentorial(pts: Points) -> np.ndarray:
    """Below the tentorium and behind the petrous ridges / dorsum sellae: the posterior fossa."""
    ax = np.abs(pts.x)
    behind = np.where(
        ax > F32(12.0), F32(-0.581) * (ax - F32(14.0)) + F32(0.814) * (pts.y + F32(6.0)), pts.y + F32(4.0)
    )
    return (pts.z < tentorium_z(pts.x, pts.y)) & (behind > 0)


def _paint(target, index, mask, value) -> None:
    view = target[index]
    view[mask] = value


class _Painter:
    """Paints ellipsoids in the shifted frame, cropped to the pixels they can reach."""

    def __init__(self, pts: Points, shifted: Points, tissue: Tissue, shift_mm: float) -> None:
        self.pts, self.shifted, self.tissue, self.margin = pts, shifted, tissue, abs(shift_mm)

    def ellipsoid(self, center, semi, yaw_deg=0.0, q_max=1.0):
        """(index, q, cavity mask) for an ellipsoid, or None when it misses these points."""
        index = self.pts.region(center, max(semi) * np.sqrt(q_max) + self.margin)
        if index is None:
            return None
        q = ellipsoid_q(self.shifted[index], center, semi, yaw_deg)
        return index, q, self.tissue.cavity[index]

    def fill(self, center, semi, hu, yaw_deg=0.0, csf_kind=None, ventricle_id=None, region=None):
        found = self.ellipsoid(center, semi, yaw_deg)
        if found is None:
            return
        index, q, cav = found
        mask = (q < 1) & cav
        _paint(self.tissue.hu, index, mask, hu)
        if csf_kind is not None:
            _paint(self.tissue.csf_kind, index, mask, csf_kind)
        if ventricle_id is not None:
            _paint(self.tissue.ventricle_id, index, mask, ventricle_id)
        if region is not None:
            _paint(self.tissue.region, index, mask, region)


def render_brain(pts: Points, anatomy: Anatomy, tissue: Tissue) -> None:
    """Paint the brain and intracranial CSF spaces into ``tissue`` where ``tissue.cavity``."""
    brain = tissue.cavity & (tissue.d_cav < 0)
    if not brain.any():
        return
    hu = anatomy.hu
    shift = anatomy.midline_shift_mm
    xs = pts.x - F32(shift) * shift_weight(pts.y, pts.z) if shift else pts.x
    tissue.xs = xs
    shifted = Points(xs, pts.y, pts.z)
    paint = _Painter(pts, shifted, tissue, shift)

    tissue.hu[brain] = hu["white"]
    tissue.region[brain] = REGION_CEREBRUM
    _cortex(pts, anatomy, tissue, brain)
    _sylvian(pts, anatomy, tissue, paint)
    _deep_gray(anatomy, paint)
    _posterior_fossa(pts, anatomy, tissue, brain)
    _cisterns_and_brainstem(anatomy, paint)
    _ventricles(anatomy, paint)
    _midline(pts, anatomy, tissue, shifted, brain)


def _cortex(pts: Points, anatomy: Anatomy, tissue: Tissue, brain: np.ndarray) -> None:
    hu = anatomy.hu
    shell = brain & (tissue.depth_mm < F32(CORTICAL_SHELL_MM))
    if shell.any():
        sx, sy, sz = (axis[shell] for axis in tissue.surface)
        depth = tissue.depth_mm[shell]
        fundus = np.clip(F32(14.0) + F32(4.0) * anatomy.sulcal_depth.unit(sx, sy, sz), 6.0, 22.0)
        # Sample the field between the surface point and the point itself, so sulci bend with depth.
        blend = F32(SULCAL_BEND)
        sx = sx + blend * (pts.x[shell] - sx)
        sy = sy + blend * (pts.y[shell] - sy)
        sz = sz + blend * (pts.z[shell] - sz)
        distance = np.abs(anatomy.sulci(sx, sy, sz))
        half = F32(anatomy.sulcus_half_mm) * np.clip(F32(1.2) - depth / fundus, 0.35, 1.0)
        gray = (depth < F32(CORTEX_MM)) | ((distance < half + F32(SULCAL_GRAY_MM)) & (depth < fundus + F32(2.0)))
        sulcus = (distance < half) & (depth < fundus)
        values = np.where(gray, F32(hu["gray"]), F32(hu["white"]))
        tissue.hu[shell] = np.where(sulcus, F32(hu["csf"]), values)
        tissue.csf_kind[shell] = np.where(sulcus, CSF_SULCUS, CSF_NONE)
        tissue.sulcus_mm[shell] = distance - half
    extra_axial = brain & (tissue.depth_mm < 0)
    tissue.hu[extra_axial] = hu["csf"]
    tissue.csf_kind[extra_axial] = CSF_EXTRA_AXIAL


def _sylvian(pts: Points, anatomy: Anatomy, tissue: Tissue, paint: _Painter) -> None:
    """Insular cortex, the insular cistern and the Sylvian fissure opening to the surface."""
    hu = anatomy.hu
    half = 0.9 + 1.4 * anatomy.atrophy
    for side in (-1.0, 1.0):
        paint.fill((side * 37.5, -3.0, -6.0), (3.0, 20.0, 15.0), hu["gray"])
        paint.fill((side * 34.5, -3.0, -6.0), (0.9 + 0.8 * anatomy.atrophy, 19.0, 14.0), hu["csf"], csf_kind=CSF_SYLVIAN)
        index = pts.region((side * 52.0, -2.0, -9.0), 30.0)
        if index is None:
            continue
        sub = pts[index]
        ax = np.abs(sub.x)
        plane_y = F32(-8.0) + F32(0.3) * (ax - F32(34.0)) + F32(0.2) * (sub.z + F32(8.0))
        fissure = (np.abs(sub.y - plane_y) < F32(half)) & (ax > F32(34.0)) & (np.abs(sub.z + F32(9.0)) < F32(14.0))
        fissure &= (np.sign(sub.x) == side) & tissue.cavity[index] & (tissue.d_cav[index] < 0)
        _paint(tissue.hu, index, fissure, hu["csf"])
        _paint(tissue.csf_kind, index, fissure, CSF_SYLVIAN)


def _deep_gray(anatomy: Anatomy, paint: _Painter) -> None:
    deep = anatomy.hu["deep_gray"]
    for side in (-1.0, 1.0):
        paint.fill((side * 13.0, -15.0, 9.0), (5.0, 9.0, 8.0), deep)  # caudate head
        paint.fill((side * 23.0, -4.0, 0.0), (6.0, 14.0, 9.0), deep, yaw_deg=side * 8.0)  # lentiform
        paint.fill((side * 10.0, 9.0, 2.0), (8.5, 11.0, 8.0), deep + 1.0)  # thalamus


def _posterior_fossa(pts: Points, anatomy: Anatomy, tissue: Tissue, brain: np.ndarray) -> None:
    """Cerebellum below the tentorium: cortex with fine folia and a white-matter core."""
    if not (pts.z < F32(-8.0)).any():
        return
    below = brain & infratentorial(pts)
    if not below.any():
        return
    hu = anatomy.hu
    depth = tissue.depth_mm[below]
    # Folia: thin fissures roughly parallel to the surface, wavy.
    phase = depth + F32(4.0) * anatomy.folia.unit(pts.x[below], pts.y[below], pts.z[below])
    folia = np.abs(np.mod(phase, F32(FOLIUM_MM)) - F32(FOLIUM_MM / 2.0)) > F32(FOLIUM_MM / 2.0 - 0.5)
    values = np.full(depth.shape, F32(hu["gray"] - 1.0))
    values = np.where(folia & (depth < F32(16.0)), F32(hu["gray"] - 7.0), values)
    values = np.where(depth > F32(18.0), F32(hu["white"] + 2.0), values)
    values = np.where(depth < 0, F32(hu["csf"]), values)
    tissue.hu[below] = values
    tissue.region[below] = REGION_CEREBELLUM
    tissue.sulcus_mm[below] = 1e3
    tissue.csf_kind[below] = np.where(depth < 0, CSF_EXTRA_AXIAL, CSF_NONE)


def _cisterns_and_brainstem(anatomy: Anatomy, paint: _Painter) -> None:
    hu = anatomy.hu
    csf = hu["csf"]
    paint.fill((0.0, -9.0, -21.0), (10.0, 7.5, 6.0), csf, csf_kind=CSF_SUPRASELLAR)
    paint.fill((0.0, -22.0, -19.0), (1.8, 10.0, 6.0), csf, csf_kind=CSF_SUPRASELLAR)  # anterior arm
    for side in (-1.0, 1.0):
        paint.fill((side * 19.0, -12.0, -20.0), (10.0, 2.2, 5.0), csf, yaw_deg=side * 8.0, csf_kind=CSF_SUPRASELLAR)
    midbrain = ((0.0, 7.0, -19.0), (12.0, 10.0, 9.0))
    found = paint.ellipsoid(*midbrain, q_max=1.3**2)
    if found is not None:
        index, q, cav = found
        ambient = (q < 1.3**2) & (paint.shifted[index].y > F32(2.0)) & cav
        _paint(paint.tissue.hu, index, ambient, csf)
        _paint(paint.tissue.csf_kind, index, ambient, CSF_AMBIENT)
    paint.fill((0.0, 21.0, -12.0), (9.0, 5.0, 6.0), csf, csf_kind=CSF_AMBIENT)  # quadrigeminal
    pons = ((0.0, 12.0, -38.0), (15.0, 12.0, 12.0))
    found = paint.ellipsoid(*pons, q_max=1.35**2)
    if found is not None:
        index, q, cav = found
        prepontine = (q < 1.35**2) & (paint.shifted[index].y < F32(12.0)) & cav
        _paint(paint.tissue.hu, index, prepontine, csf)
        _paint(paint.tissue.csf_kind, index, prepontine, CSF_POSTERIOR_FOSSA)
    magna = 0.7 + 0.8 * anatomy.atrophy
    paint.fill((0.0, 57.0, -58.0), (12.0 * magna, 9.0 * magna, 9.0), csf, csf_kind=CSF_POSTERIOR_FOSSA)
    for center, semi in (midbrain, pons, ((0.0, 20.0, -56.0), (9.0, 8.0, 12.0))):
        paint.fill(center, semi, hu["brainstem"], csf_kind=CSF_NONE, region=REGION_BRAINSTEM)


def lateral_ventricle_parts(anatomy: Anatomy, side: float) -> list[tuple[tuple, tuple, float]]:
    """(center, semi-axes, yaw) of the ellipsoids forming one lateral ventricle (shifted frame).

    ``side`` is -1 for the patient's right, +1 for the left. Order: frontal horn, body,
    atrium, occipital horn, temporal horn.
    """
    vs = anatomy.ventricle_scale
    spread = 1.0 + 0.45 * (vs - 1.0)
    tall = vs**0.5
    return [
        ((side * 6.0 * spread, -22.0, 12.0), (4.5 * vs, 13.0, 8.5 * tall), side * 14.0),
        ((side * 7.5 * spread, 2.0, 21.0), (4.5 * vs, 22.0, 5.5 * tall), 0.0),
        ((side * 18.0 * spread, 27.0, 9.0), (6.5 * vs, 9.0 * tall, 10.0 * tall), 0.0),
        ((side * 20.0 * spread, 41.0, 5.0), (3.8 * vs, 11.0, 6.5 * tall), -side * 10.0),
        ((side * 28.0 * spread, 2.0, -18.0), (2.5 * vs, 11.0, 3.0 * vs), side * 15.0),
    ]


def _ventricles(anatomy: Anatomy, paint: _Painter) -> None:
    hu = anatomy.hu
    csf = hu["csf"]
    for side, vid in ((-1.0, VENT_RIGHT_LATERAL), (1.0, VENT_LEFT_LATERAL)):
        for center, semi, yaw in lateral_ventricle_parts(anatomy, side):
            found = paint.ellipsoid(center, semi, yaw)
            if found is None:
                continue
            index, q, cav = found
            mask = (q < 1) & cav & (np.abs(paint.shifted[index].x) > F32(1.0))  # septum pellucidum
            _paint(paint.tissue.hu, index, mask, csf)
            _paint(paint.tissue.csf_kind, index, mask, CSF_NONE)
            _paint(paint.tissue.ventricle_id, index, mask, vid)
        spread = 1.0 + 0.45 * (anatomy.ventricle_scale - 1.0)
        found = paint.ellipsoid((side * 18.0 * spread, 28.0, 9.0), (3.5, 4.5, 3.5))  # choroid plexus glomus
        if found is not None:
            index, q, cav = found
            glomus = (q < 1) & (paint.tissue.ventricle_id[index] == vid)
            _paint(paint.tissue.hu, index, glomus, hu["gray"])
    third = (1.5 + 2.5 * anatomy.atrophy, 11.0, 9.0)
    paint.fill((0.0, -4.0, -4.0), third, csf, csf_kind=CSF_NONE, ventricle_id=VENT_THIRD, region=REGION_CEREBRUM)
    paint.fill((0.0, 29.0, -41.0), (7.0, 4.0, 7.0), csf, csf_kind=CSF_NONE, ventricle_id=VENT_FOURTH)


def _midline(pts: Points, anatomy: Anatomy, tissue: Tissue, shifted: Points, brain: np.ndarray) -> None:
    """Interhemispheric fissure with the falx, and the dural venous sinuses."""
    hu = anatomy.hu
    above_cc = ((pts.y - F32(4.0)) / F32(40.0)) ** 2 + ((pts.z - F32(6.0)) / F32(22.0)) ** 2 > F32(1.0)
    cerebrum = brain & (tissue.region == REGION_CEREBRUM) & (tissue.ventricle_id == 0) & above_cc
    xs = np.abs(shifted.x)
    fissure = cerebrum & (xs < F32(anatomy.interhemispheric_half_mm))
    tissue.hu[fissure] = hu["csf"]
    tissue.csf_kind[fissure] = CSF_INTERHEMISPHERIC
    tissue.hu[cerebrum & (xs < F32(0.5))] = hu["falx"]

    d = tissue.d_cav
    sss = brain & (d > F32(-7.0)) & (np.abs(pts.x) < F32(0.75) * (F32(7.0) + d)) & (pts.z > F32(-25.0))
    sss &= pts.y > F32(-75.0)
    tent = tentorium_z(pts.x, pts.y)
    transverse = brain & (d > F32(-6.0)) & (np.abs(pts.z - tent) < F32(3.5)) & (pts.y > F32(20.0))
    straight = brain & (xs < F32(2.2)) & (np.abs(pts.z - tent - F32(1.5)) < F32(2.2)) & (pts.y > F32(25.0))
    sinus = sss | transverse | straight
    tissue.hu[sinus] = hu["sinus"]
    tissue.csf_kind[sinus] = CSF_NONE
