"""The five hemorrhage subtypes as 3-D shapes in the head frame, with their morphology.

* :class:`Epidural` -- biconvex lens pressed against the inner table, confined to one skull
  bone: its thickness tapers to zero at the coronal, lambdoid, squamosal and sagittal
  sutures (it does not cross them).
* :class:`Subdural` -- crescent along the convexity over a long stretch (crosses sutures),
  stopping at the midline; or a thin layer along one side of the falx.
* :class:`Parenchymal` -- lobulated blob inside the brain with a hypodense edema rim.
* :class:`Ventricular` -- blood in the ventricles: layering in the dependent (posterior, in a
  supine patient) horns with a straight fluid level, and/or a cast filling part of them.
* :class:`Subarachnoid` -- blood filling CSF spaces (sulci, Sylvian fissures, basal cisterns)
  in a region, patchily; sulci that hold blood are slightly distended.

Each lesion paints itself into a :class:`~ich_edge.synth.anatomy.Tissue` and returns the mask
of its blood; edema is not part of the mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ich_edge.synth.anatomy import CSF_SULCUS, REGION_CEREBRUM, Tissue
from ich_edge.synth.pose import Points
from ich_edge.synth.shapes import F32, WaveField

# Suture planes (head frame): point on the plane and normal pointing backwards.
CORONAL = (np.array([0.0, -15.0, 60.0]), np.array([0.0, 0.99, -0.14]))
LAMBDOID = (np.array([0.0, 70.0, 45.0]), np.array([0.0, 0.94, -0.336]))
SQUAMOSAL_Z_MM = 12.0
LOBE_SCALE_MM = 9.0  # angular scale of an IPH's lobulation (larger: more, smaller lobes)  # the temporal squama lies below this height, lateral to |x| > 35


def suture_distances(x, y, z) -> dict[str, np.ndarray]:
    """Signed distances (mm) to the suture planes: coronal and lambdoid (+ behind), squamosal
    (+ below, i.e. on the temporal side) and sagittal (+ on the patient's left)."""
    out = {}
    for name, (point, normal) in (("coronal", CORONAL), ("lambdoid", LAMBDOID)):
        n = normal / np.linalg.norm(normal)
        out[name] = (x - F32(point[0])) * F32(n[0]) + (y - F32(point[1])) * F32(n[1]) + (z - F32(point[2])) * F32(n[2])
    out["squamosal"] = F32(SQUAMOSAL_Z_MM) - F32(0.1) * y - z
    out["sagittal"] = x
    return out


def bone_of(x: float, y: float, z: float) -> str:
    """Which vault bone a point on the inner table belongs to."""
    d = {k: float(v) for k, v in suture_distances(np.float32(x), np.float32(y), np.float32(z)).items()}
    if d["coronal"] < 0:
        return "frontal"
    if d["lambdoid"] > 0:
        return "occipital"
    if d["squamosal"] > 0 and abs(x) > 35.0:
        return "temporal"
    return "parietal"


def inside_bone_mm(bone: str, side: float, x, y, z) -> np.ndarray:
    """Distance (mm) inside ``bone`` from its nearest suture; negative outside the bone.

    ``side`` (-1 right, +1 left) selects the parietal or temporal bone of that side.
    """
    d = suture_distances(x, y, z)
    if bone == "frontal":
        return -d["coronal"]
    if bone == "occipital":
        return d["lambdoid"]
    between = np.minimum(np.minimum(d["coronal"], -d["lambdoid"]), F32(side) * d["sagittal"])
    lateral = np.abs(x) > F32(35.0)
    if bone == "temporal":
        return np.where(lateral, np.minimum(between, d["squamosal"]), F32(-1.0))
    return np.where(lateral, np.minimum(between, -d["squamosal"]), between)


def _paint(target, index, mask, value) -> None:
    view = target[index]
    view[mask] = value if np.isscalar(value) else value[mask]


def _tangent_frame(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    up = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    t1 = np.cross(up, normal)
    t1 /= np.linalg.norm(t1)
    return t1, np.cross(normal, t1)


@dataclass(frozen=True)
class Lesion:
    """Common parts: subtype name, bounding sphere (head frame) and blood density."""

    subtype: str
    center: tuple[float, float, float]
    radius_mm: float
    blood_hu: float
    texture: WaveField = field(repr=False)

    def paint(self, pts: Points, tissue: Tissue) -> np.ndarray:
        """Paint the lesion into ``tissue`` and return the mask of its blood (``pts.shape``)."""
        mask = np.zeros(pts.shape, bool)
        index = pts.region(self.center, self.radius_mm)
        if index is None:
            return mask
        sub_mask, sub_hu = self._blood(pts[index], tissue, index)
        _paint(tissue.hu, index, sub_mask, sub_hu)
        mask[index] = sub_mask
        return mask

    def _blood_hu(self, sub: Points, amplitude: float = 4.0) -> np.ndarray:
        return F32(self.blood_hu) + F32(amplitude) * self.texture.unit(sub.x, sub.y, sub.z)

    def _blood(self, sub: Points, tissue: Tissue, index):
        raise NotImplementedError


def _sub(array, index):
    return array[index] if index is not Ellipsis else array


@dataclass(frozen=True)
class _Convexity(Lesion):
    """Shared geometry of extra-axial collections along the inner table."""

    surface_point: tuple[float, float, float] = (0.0, 0.0, 0.0)
    half_extent_mm: tuple[float, float] = (20.0, 20.0)
    thickness_mm: float = 10.0

    def _profile(self, tissue: Tissue, index) -> np.ndarray:
        """Normalized squared distance along the skull from the lesion's centre (< 1 on it)."""
        sx, sy, sz = (_sub(axis, index) for axis in tissue.surface)
        c = np.asarray(self.surface_point)
        normal = c / np.linalg.norm(c)
        t1, t2 = _tangent_frame(normal)
        dx, dy, dz = sx - F32(c[0]), sy - F32(c[1]), sz - F32(c[2])
        a = dx * F32(t1[0]) + dy * F32(t1[1]) + dz * F32(t1[2])
        b = dx * F32(t2[0]) + dy * F32(t2[1]) + dz * F32(t2[2])
        n = dx * F32(normal[0]) + dy * F32(normal[1]) + dz * F32(normal[2])
        h1, h2 = self.half_extent_mm
        return (a / F32(h1)) ** 2 + (b / F32(h2)) ** 2 + (n / F32(min(h1, h2))) ** 2


@dataclass(frozen=True)
class Epidural(_Convexity):
    bone: str = "temporal"
    side: float = 1.0
    swirl: bool = False

    def _blood(self, sub, tissue, index):
        r2 = self._profile(tissue, index)
        thickness = F32(self.thickness_mm) * np.maximum(F32(1.0) - r2, 0.0)  # lens: parabolic
        inside = inside_bone_mm(self.bone, self.side, *(_sub(a, index) for a in tissue.surface))
        thickness = thickness * np.sqrt(np.clip(inside / F32(6.0), 0.0, 1.0))  # pinned at the sutures
        d = _sub(tissue.d_cav, index)
        mask = _sub(tissue.cavity, index) & (d < 0) & (d > -thickness)
        hu = self._blood_hu(sub)
        if self.swirl:  # hyperacute unclotted blood: darker swirls
            hu = np.where(self.texture.unit(sub.y, sub.z, sub.x) > F32(0.8), hu - F32(22.0), hu)
        return mask, hu


@dataclass(frozen=True)
class Subdural(_Convexity):
    side: float = 1.0
    along_falx: bool = False

    def _blood(self, sub, tissue, index):
        cavity = _sub(tissue.cavity, index) & (_sub(tissue.region, index) == 1)
        hu = self._blood_hu(sub, amplitude=3.0)
        if self.along_falx:
            xs = _sub(tissue.xs, index) * F32(self.side)
            h1, h2 = self.half_extent_mm
            r2 = ((sub.y - F32(self.center[1])) / F32(h1)) ** 2 + ((sub.z - F32(self.center[2])) / F32(h2)) ** 2
            thickness = F32(self.thickness_mm) * np.sqrt(np.maximum(F32(1.0) - r2, 0.0))
            mask = cavity & (xs > F32(0.5)) & (xs < F32(0.5) + thickness)
            return mask, hu
        r2 = self._profile(tissue, index)
        thickness = F32(self.thickness_mm) * np.maximum(F32(1.0) - r2, 0.0) ** F32(0.6)
        sx = _sub(tissue.surface[0], index) * F32(self.side)
        thickness = thickness * np.sqrt(np.clip((sx - F32(1.0)) / F32(12.0), 0.0, 1.0))  # stops at the midline
        d = _sub(tissue.d_cav, index)
        mask = cavity & (d < 0) & (d > -thickness) & (sub.x * F32(self.side) > F32(1.0))
        return mask, hu


@dataclass(frozen=True)
class Parenchymal(Lesion):
    semi_mm: tuple[float, float, float] = (10.0, 10.0, 10.0)
    yaw_deg: float = 0.0
    edema_mm: float = 3.0
    edema_hu: float = 18.0
    location: str = "lobar"

    def paint(self, pts: Points, tissue: Tissue) -> np.ndarray:
        mask = np.zeros(pts.shape, bool)
        index = pts.region(self.center, self.radius_mm)
        if index is None:
            return mask
        sub = pts[index]
        c, s = np.cos(np.deg2rad(self.yaw_deg)), np.sin(np.deg2rad(self.yaw_deg))
        dx, dy, dz = sub.x - F32(self.center[0]), sub.y - F32(self.center[1]), sub.z - F32(self.center[2])
        u, v = F32(c) * dx + F32(s) * dy, F32(-s) * dx + F32(c) * dy
        a, b, h = self.semi_mm
        root = np.sqrt((u / F32(a)) ** 2 + (v / F32(b)) ** 2 + (dz / F32(h)) ** 2)
        norm = np.sqrt(dx * dx + dy * dy + dz * dz) + F32(1e-3)
        k = F32(LOBE_SCALE_MM)
        lobes = F32(1.0) + F32(0.12) * self.texture.unit(dx / norm * k, dy / norm * k, dz / norm * k)
        root = root / lobes
        mean_semi = F32((a + b + h) / 3.0)
        cavity = _sub(tissue.cavity, index) & (_sub(tissue.d_cav, index) < 0)
        brain = cavity & (_sub(tissue.csf_kind, index) == 0) & (_sub(tissue.ventricle_id, index) == 0)
        edema = brain & (root < F32(1.0) + F32(self.edema_mm) / mean_semi)
        _paint(tissue.hu, index, edema, F32(self.edema_hu) + F32(2.0) * self.texture.unit(sub.z, sub.x, sub.y))
        blood = cavity & (root < F32(1.0))
        _paint(tissue.hu, index, blood, self._blood_hu(sub))
        mask[index] = blood
        return mask


@dataclass(frozen=True)
class Ventricular(Lesion):
    """Blood in the ventricles ``ventricle_ids``: below a fluid level and/or inside a cast sphere.

    ``down`` is the head-frame direction of gravity (posterior in the scanner for a supine
    patient) and ``level_mm`` the fluid level along it; ``cast_*`` a sphere of filled ventricle.
    """

    ventricle_ids: tuple[int, ...] = (1, 2)
    down: tuple[float, float, float] = (0.0, 1.0, 0.0)
    level_mm: float | None = None
    cast_ids: tuple[int, ...] = ()
    cast_center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cast_radius_mm: float = 0.0

    def _blood(self, sub, tissue, index):
        vid = _sub(tissue.ventricle_id, index)
        mask = np.zeros(vid.shape, bool)
        if self.level_mm is not None:
            along = sub.x * F32(self.down[0]) + sub.y * F32(self.down[1]) + sub.z * F32(self.down[2])
            mask |= np.isin(vid, self.ventricle_ids) & (along > F32(self.level_mm))
        if self.cast_ids:
            c = self.cast_center
            r2 = (sub.x - F32(c[0])) ** 2 + (sub.y - F32(c[1])) ** 2 + (sub.z - F32(c[2])) ** 2
            mask |= np.isin(vid, self.cast_ids) & (r2 < F32(self.cast_radius_mm**2))
        return mask, self._blood_hu(sub, amplitude=3.0)


@dataclass(frozen=True)
class Subarachnoid(Lesion):
    """Blood in the CSF spaces of kinds ``csf_kinds`` within the bounding sphere, patchy."""

    csf_kinds: tuple[int, ...] = (CSF_SULCUS,)
    fill_threshold: float = -0.5  # blood where texture > threshold; lower fills more
    distend_mm: float = 0.8  # sulci holding blood are this much wider

    def _blood(self, sub, tissue, index):
        c = self.center
        r2 = (sub.x - F32(c[0])) ** 2 + (sub.y - F32(c[1])) ** 2 + (sub.z - F32(c[2])) ** 2
        region = (r2 < F32(self.radius_mm**2)) & (self.texture.unit(sub.x, sub.y, sub.z) > F32(self.fill_threshold))
        kinds = _sub(tissue.csf_kind, index)
        spaces = np.isin(kinds, self.csf_kinds)
        if CSF_SULCUS in self.csf_kinds and tissue.sulcus_mm is not None:
            distended = (_sub(tissue.sulcus_mm, index) < F32(self.distend_mm)) & (kinds == 0)
            distended &= (_sub(tissue.ventricle_id, index) == 0) & (_sub(tissue.region, index) == REGION_CEREBRUM)
            spaces |= distended
            _paint(tissue.csf_kind, index, distended & region, CSF_SULCUS)
        mask = spaces & region & _sub(tissue.cavity, index)
        return mask, self._blood_hu(sub, amplitude=4.0)
