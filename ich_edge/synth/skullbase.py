"""Skull base and face: the cavity floor, petrous ridges, clivus, orbits, sinuses, neck.

The floor of the cranial cavity is a height field ``z_floor(x, y)`` in the head frame: the
anterior fossa over the orbits (domed orbital roofs, lower cribriform plate), a step down at
the sphenoid ridge to the middle fossae (deep laterally, the sella in the middle), the
petrous ridges running obliquely back and out from the apex, and behind them the posterior
fossa, whose floor is the occipital vault itself; in the midline the clivus slopes down and
back to the foramen magnum. Below the floor lies a layer of bone (thin orbital roofs, thick
petrous pyramids and clivus) and under it the face and neck: orbits with globes, lens and
fat, ethmoid, sphenoid and maxillary sinuses, nasal cavity, nasopharynx, mastoid air cells,
ear canals, auricles, zygomatic arches, condyles, C1, dens and mandible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ich_edge.synth.anatomy import HU_AIR, Anatomy, Tissue
from ich_edge.synth.pose import Points
from ich_edge.synth.shapes import F32, ellipsoid_q, ramp

FLOOR_TOP_Z = -20.0  # the floor lies below this head-frame height everywhere
FACE_TOP_Z = -18.0
ABOVE = -1000.0  # floor depth of points far above the floor
FLOOR_RELIEF_MM = 2.0


@dataclass
class Floor:
    """``depth_mm``: ``z_floor - z`` (> 0 below the floor); bone thickness under it; petrous weight."""

    depth_mm: np.ndarray
    thickness_mm: np.ndarray
    petrous: np.ndarray


def _floor_fields(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ax = np.abs(x)
    # The lesser sphenoid wings part the anterior from the middle fossa, running forward and out.
    wing_y = F32(-30.0) - F32(0.22) * ax
    anterior = ramp((wing_y - y) / F32(2.5))
    # Anterior fossa: orbital roofs domed upwards, the cribriform plate lower, rising to the
    # front and the sides where it meets the frontal bone.
    z_ant = F32(-33.0) + F32(8.0) * np.exp(-(((ax - F32(26.0)) / F32(11.0)) ** 2))
    z_ant = z_ant - F32(5.0) * np.exp(-((ax / F32(5.0)) ** 2))
    z_ant = z_ant + F32(0.12) * np.maximum(wing_y - y, 0.0) + F32(0.015) * np.maximum(ax - F32(30.0), 0.0) ** 2
    # Middle fossae: bowls deepest at (+-38, -12), the sella in the middle.
    bowl = F32(-52.0) + F32(0.04) * (ax - F32(38.0)) ** 2 + F32(0.025) * (y + F32(12.0)) ** 2
    z_mid = np.minimum(bowl, F32(-36.0))
    z_mid = z_mid + (F32(-36.0) - z_mid) * ramp((F32(15.0) - ax) / F32(2.5))
    behind_ridge = F32(-0.581) * (ax - F32(14.0)) + F32(0.814) * (y + F32(6.0))  # mm behind the ridge line
    posterior = ramp(behind_ridge / F32(1.5))
    clivus = F32(-35.0) - F32(1.5) * np.maximum(y + F32(5.0), 0.0)
    medial = ramp((F32(12.0) - ax) / F32(1.5))
    z_post = medial * clivus + (F32(1.0) - medial) * F32(-150.0)
    z_fossa = (F32(1.0) - posterior) * z_mid + posterior * z_post
    ridge_w = ramp((ax - F32(12.0)) / F32(1.5)) * ramp((F32(60.0) - ax) / F32(2.0))
    ridge = F32(-31.0) - F32(1.2) * np.abs(behind_ridge)
    ridge = ridge_w * ridge + (F32(1.0) - ridge_w) * F32(-200.0)
    petrous = ridge_w * ramp((ridge - z_fossa) / F32(2.0))
    z_fossa = np.maximum(z_fossa, ridge)
    z_floor = np.minimum(anterior * z_ant + (F32(1.0) - anterior) * z_fossa, F32(FLOOR_TOP_Z - 1.0))
    clivus_w = medial * posterior * (F32(1.0) - anterior)
    thickness = anterior * F32(2.5) + (F32(1.0) - anterior) * (F32(3.0) + F32(20.0) * petrous + F32(9.0) * clivus_w)
    return z_floor, thickness, petrous * (F32(1.0) - anterior)


def floor_depth(pts: Points, anatomy: Anatomy) -> Floor:
    """The floor's depth field at ``pts`` (see :class:`Floor`); computed only where it matters.

    A smooth random relief of about +-2 mm (``Anatomy.floor_relief``) keeps the fossae from
    being perfect bowls.
    """
    shape = pts.shape
    depth = np.full(shape, ABOVE, np.float32)
    thickness = np.full(shape, 3.0, np.float32)
    petrous = np.zeros(shape, np.float32)
    # Only low points within the head's outline (face, ears and nose included) need it.
    low = (pts.z < F32(FLOOR_TOP_Z)) & ((pts.x / F32(82.0)) ** 2 + ((pts.y + F32(3.0)) / F32(118.0)) ** 2 < F32(1.0))
    if low.any():
        x, y = pts.x[low], pts.y[low]
        z_floor, thick, pet = _floor_fields(x, y)
        relief = F32(FLOOR_RELIEF_MM) * anatomy.floor_relief.unit(x, y, np.zeros_like(x))
        depth[low] = np.minimum(z_floor + relief, F32(FLOOR_TOP_Z - 0.5)) - pts.z[low]
        thickness[low] = thick
        petrous[low] = pet
    return Floor(depth, thickness, petrous)


def spinal_canal(pts: Points) -> np.ndarray:
    """The foramen magnum and spinal canal below the posterior fossa (part of the cavity)."""
    return (pts.z < F32(-55.0)) & ((pts.x**2 + (pts.y - F32(24.0)) ** 2) < F32(12.0**2))


def _face_envelope(pts: Points) -> tuple[np.ndarray, np.ndarray]:
    """Inside the face and neck outline (below FACE_TOP_Z), and the depth under the skin in mm."""
    neck = np.clip((F32(-80.0) - pts.z) / F32(20.0), 0.0, 1.0)
    semi_x = F32(69.0) - F32(12.0) * neck
    semi_y = F32(94.0) - F32(10.0) * neck
    root = np.sqrt((pts.x / semi_x) ** 2 + ((pts.y + F32(3.0)) / semi_y) ** 2)
    nose = ((pts.x / F32(11.0)) ** 2 + ((pts.y + F32(98.0)) / F32(14.0)) ** 2 < F32(1.0)) & (
        np.abs(pts.z + F32(60.0)) < F32(20.0)
    )
    inside = ((root < F32(1.0)) | nose) & (pts.z < F32(FACE_TOP_Z))
    under_skin = np.where(nose, F32(10.0), (F32(1.0) - root) * semi_x)
    return inside, under_skin


def _paint(target: np.ndarray, index, mask: np.ndarray, value) -> None:
    view = target[index]
    view[mask] = value if np.isscalar(value) else value[mask]


def _air_cells(pts: Points, anatomy: Anatomy, wall_mm: float) -> np.ndarray:
    """True in the air of a honeycomb of cells whose bony septa are about ``2 * wall_mm`` thick."""
    return np.abs(anatomy.air_cells(pts.x, pts.y, pts.z)) > F32(wall_mm)


def render_face(pts: Points, anatomy: Anatomy, tissue: Tissue, floor: Floor, vault: np.ndarray, vault_mm) -> None:
    """Paint the skull-base bone, face and neck into ``tissue`` (outside the vault and cavity)."""
    if not (pts.z < F32(FACE_TOP_Z + 2.0)).any():
        return
    hu = anatomy.hu
    inside, under_skin = _face_envelope(pts)
    face = inside & ~vault & ~tissue.cavity
    soft = np.where(under_skin < F32(2.0), F32(hu["skin"]), F32(hu["muscle"]))
    fat = (under_skin >= F32(2.0)) & (under_skin < F32(6.0))
    if face.any():  # fat planes between the muscles
        scale = F32(0.45)
        fat[face] |= anatomy.air_cells.unit(pts.x[face] * scale, pts.y[face] * scale, pts.z[face] * scale) > F32(1.5)
    soft = np.where(fat, F32(hu["fat"]), soft)
    tissue.hu = np.where(face, soft, tissue.hu)

    floor_bone = (floor.depth_mm >= 0) & (floor.depth_mm < floor.thickness_mm) & (tissue.d_cav < vault_mm)
    floor_bone &= ~tissue.cavity
    bone_hu = floor.petrous * F32(hu["petrous"]) + (F32(1.0) - floor.petrous) * F32(hu["cortical"] * 0.85)
    tissue.hu = np.where(floor_bone, bone_hu, tissue.hu)
    tissue.bone |= floor_bone
    free = face & ~floor_bone  # where face structures may be drawn

    for side in (-1.0, 1.0):
        _orbit(pts, anatomy, tissue, free, side)
        _sinus(pts, tissue, free, (side * 27.0, -56.0, -74.0), (14.0, 15.0, 16.0), hu["cortical"] * 0.7)
        _mastoid(pts, anatomy, tissue, side)
        _bone_blob(pts, tissue, free, (side * 15.0, 10.0, -72.0), (7.0, 9.0, 6.0), hu["cortical"])  # condyle
        _bone_blob(pts, tissue, free, (side * 48.0, 2.0, -64.0), (5.0, 7.0, 6.0), hu["cortical"])  # mandible
        _bone_blob(pts, tissue, free, (side * 47.0, -8.0, -100.0), (4.0, 13.0, 34.0), hu["cortical"])  # ramus
        _bone_blob(pts, tissue, free, (side * 61.0, -25.0, -50.0), (3.0, 32.0, 4.0), hu["cortical"])  # zygoma
        _auricle(pts, tissue, side, hu["skin"])
    _sinus(pts, tissue, free, (0.0, -22.0, -52.0), (13.0, 11.0, 10.0), hu["cortical"] * 0.7)  # sphenoid
    _ethmoid_and_nose(pts, anatomy, tissue, free)
    _sinus(pts, tissue, free, (0.0, -10.0, -82.0), (13.0, 8.0, 12.0), None)  # nasopharynx
    _spine(pts, anatomy, tissue, free)


def _bone_blob(pts, tissue, free, center, semi, value) -> None:
    index = pts.region(center, max(semi))
    if index is None:
        return
    mask = (ellipsoid_q(pts[index], center, semi) < 1) & free[index]
    _paint(tissue.hu, index, mask, value)
    _paint(tissue.bone, index, mask, True)


def _sinus(pts, tissue, free, center, semi, wall_hu) -> None:
    """An air-filled sinus with a thin bony wall (no wall when ``wall_hu`` is None)."""
    index = pts.region(center, max(semi) * 1.25)
    if index is None:
        return
    q = ellipsoid_q(pts[index], center, semi)
    sub = free[index]
    if wall_hu is not None:
        wall = (q < 1.25**2) & sub
        _paint(tissue.hu, index, wall, wall_hu)
        _paint(tissue.bone, index, wall, True)
    _paint(tissue.hu, index, (q < 1) & sub, HU_AIR)
    _paint(tissue.bone, index, (q < 1) & sub, False)


def _orbit(pts, anatomy, tissue, free, side) -> None:
    hu = anatomy.hu
    globe = np.array([side * 31.0, -67.0, -40.0])
    apex = np.array([side * 13.0, -30.0, -40.0])
    index = pts.region((globe + apex) / 2, 36.0)
    if index is None:
        return
    sub = pts[index]
    axis = (globe - apex) / np.linalg.norm(globe - apex)
    rel = (sub.x - F32(apex[0]), sub.y - F32(apex[1]), sub.z - F32(apex[2]))
    along = rel[0] * F32(axis[0]) + rel[1] * F32(axis[1]) + rel[2] * F32(axis[2])
    radial = np.sqrt(np.maximum(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2 - along**2, 0.0))
    cone = F32(np.tan(np.deg2rad(30.0))) * along
    length = F32(np.linalg.norm(globe - apex) + 4.0)
    inside_cone = (along > 0) & (along < length)
    free_sub = free[index]
    # Bony walls: medial (lamina papyracea) and lateral, behind the globe's equator.
    side_wall = (np.abs(sub.z - F32(apex[2])) < F32(0.6) * radial) & (along < length - F32(10.0))
    _paint(tissue.hu, index, inside_cone & side_wall & (radial < cone + F32(2.0)) & free_sub, hu["cortical"] * 0.8)
    _paint(tissue.hu, index, inside_cone & (radial < cone) & free_sub, hu["fat"])
    _paint(tissue.hu, index, inside_cone & (radial < F32(2.2)) & free_sub, hu["muscle"] - 10.0)  # optic nerve
    dist = np.sqrt((sub.x - F32(globe[0])) ** 2 + (sub.y - F32(globe[1])) ** 2 + (sub.z - F32(globe[2])) ** 2)
    _paint(tissue.hu, index, (dist < F32(11.5)) & free_sub, hu["muscle"] - 5.0)  # sclera
    _paint(tissue.hu, index, (dist < F32(10.5)) & free_sub, hu["vitreous"])
    lens = ellipsoid_q(sub, (globe[0], globe[1] - 8.5, globe[2]), (4.5, 2.0, 4.5)) < 1
    _paint(tissue.hu, index, lens & free_sub, hu["lens"])
    _paint(tissue.bone, index, inside_cone & free_sub, False)


def _ethmoid_and_nose(pts, anatomy, tissue, free) -> None:
    center = (0.0, -57.0, -46.0)
    index = pts.region(center, 18.0)
    if index is not None:
        sub = pts[index]
        cells = (ellipsoid_q(sub, center, (11.0, 17.0, 13.0)) < 1) & free[index]
        air = cells & _air_cells(sub, anatomy, 0.7)
        _paint(tissue.hu, index, cells, anatomy.hu["cortical"] * 0.4)
        _paint(tissue.hu, index, air, HU_AIR)
    center = (0.0, -70.0, -72.0)
    index = pts.region(center, 32.0)
    if index is not None:
        sub = pts[index]
        nose = (ellipsoid_q(sub, center, (14.0, 30.0, 18.0)) < 1) & free[index]
        turbinate = (np.abs(sub.x) > F32(7.0)) & (np.cos((sub.z + F32(70.0)) * F32(0.52)) > F32(0.3))
        _paint(tissue.hu, index, nose, HU_AIR)
        _paint(tissue.hu, index, nose & turbinate, anatomy.hu["muscle"] - 10.0)
        _paint(tissue.hu, index, nose & (np.abs(sub.x) < F32(1.2)), anatomy.hu["cortical"] * 0.3)  # septum


def _mastoid(pts, anatomy, tissue, side) -> None:
    center = (side * 46.0, 30.0, -52.0)
    index = pts.region(center, 13.0)
    if index is not None:
        sub = pts[index]
        region = (ellipsoid_q(sub, center, (11.0, 12.0, 13.0)) < 1) & ~tissue.cavity[index]
        _paint(tissue.hu, index, region, anatomy.hu["cortical"] * 0.8)
        _paint(tissue.hu, index, region & _air_cells(sub, anatomy, 1.0), HU_AIR)
        _paint(tissue.bone, index, region, True)
    center = (side * 60.0, 12.0, -50.0)
    index = pts.region(center, 11.0)
    if index is not None:
        sub = pts[index]
        canal = ((sub.y - F32(12.0)) ** 2 + (sub.z + F32(50.0)) ** 2 < F32(3.5**2)) & (np.abs(sub.x) > F32(52.0))
        canal &= ~tissue.cavity[index]
        _paint(tissue.hu, index, canal, HU_AIR)
        _paint(tissue.bone, index, canal, False)


def _auricle(pts, tissue, side, skin_hu) -> None:
    center = (side * 77.0, 16.0, -44.0)
    index = pts.region(center, 22.0)
    if index is None:
        return
    sub = pts[index]
    ear = (ellipsoid_q(sub, center, (3.5, 13.0, 21.0)) < 1) & (tissue.hu[index] <= F32(HU_AIR + 1.0))
    _paint(tissue.hu, index, ear, skin_hu)


def _spine(pts, anatomy, tissue, free) -> None:
    """Cord, C1 ring and dens below the foramen magnum; the maxilla at the lowest levels."""
    if not (pts.z < F32(-60.0)).any():
        return
    hu = anatomy.hu
    radial = np.sqrt(pts.x**2 + (pts.y - F32(24.0)) ** 2)
    canal = spinal_canal(pts)
    below = pts.z < F32(-62.0)
    tissue.hu = np.where(canal & below, F32(hu["csf"]), tissue.hu)
    tissue.hu = np.where(canal & below & (radial < F32(6.0)), F32(hu["brainstem"]), tissue.hu)
    ring = free & (radial >= F32(12.0)) & (radial < F32(18.0)) & (np.abs(pts.z + F32(84.0)) < F32(7.0))
    tissue.hu = np.where(ring, F32(hu["cortical"]), tissue.hu)
    _bone_blob(pts, tissue, free, (0.0, 7.0, -90.0), (5.0, 5.0, 13.0), hu["cortical"])  # dens
    arch = np.sqrt((pts.x / F32(30.0)) ** 2 + ((pts.y + F32(50.0)) / F32(34.0)) ** 2)
    maxilla = free & (pts.z < F32(-92.0)) & (arch > F32(0.78)) & (arch < F32(1.0)) & (pts.y < F32(-40.0))
    tissue.hu = np.where(maxilla, F32(hu["cortical"]), tissue.hu)
    tissue.bone |= ring | maxilla
