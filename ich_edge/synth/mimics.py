"""Hard negatives: things a bright-pixel detector takes for blood, in every kind of study.

* physiological calcifications (100 to 400+ HU, small, so partial volume at 128 px brings them
  down to the 50 to 90 HU of blood): choroid plexus in the atria, pineal gland, globus
  pallidus, plaques on the falx;
* dense dural venous sinuses (drawn by :mod:`.brain`; ``Anatomy.hu["sinus"]`` 58 to 72 HU in
  about a third of the heads);
* scalp swelling (soft-tissue lump outside the skull);
* beam-hardening streaks across the posterior fossa between the petrous bones: a dark
  Hounsfield bar plus thin bright and dark streaks;
* partial volume of the skull at the vertex and skull base (from the slab averaging in
  :mod:`.study`, not drawn here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ich_edge.synth.anatomy import Anatomy, Tissue
from ich_edge.synth.brain import lateral_ventricle_parts
from ich_edge.synth.pose import Points
from ich_edge.synth.shapes import F32, ellipsoid_q

PETROUS_Z_MM = -42.0  # head-frame height of the streaks


@dataclass(frozen=True)
class Calcification:
    """A calcified focus: ``peak_hu`` at the centre, falling to 40 % at the rim."""

    kind: str
    center: tuple[float, float, float]
    semi_mm: tuple[float, float, float]
    peak_hu: float
    shifted: bool = True  # moves with the midline shift (deep structures)

    def paint(self, pts: Points, tissue: Tissue, shift_mm: float) -> None:
        index = pts.region(self.center, max(self.semi_mm) + abs(shift_mm))
        if index is None:
            return
        sub = pts[index]
        if self.shifted and shift_mm:
            sub = Points(tissue.xs[index], sub.y, sub.z)
        q = ellipsoid_q(sub, self.center, self.semi_mm)
        mask = (q < 1) & tissue.cavity[index]
        view = tissue.hu[index]
        view[mask] = np.maximum(view[mask], F32(self.peak_hu) * (F32(1.0) - F32(0.6) * q[mask]))


@dataclass(frozen=True)
class ScalpSwelling:
    """A soft-tissue lump over the skull around ``direction`` (unit vector, head frame)."""

    direction: tuple[float, float, float]
    radius_mm: float
    thickness_mm: float
    hu: float

    def paint(self, pts: Points, tissue: Tissue, anatomy: Anatomy) -> None:
        u = np.asarray(self.direction)
        center = u * (anatomy.semi_mm[0] + anatomy.skull_mm + 8.0)
        index = pts.region(center, self.radius_mm + 40.0)
        if index is None:
            return
        sub = pts[index]
        norm = np.sqrt(sub.x**2 + sub.y**2 + sub.z**2) + F32(1e-3)
        cos = (sub.x * F32(u[0]) + sub.y * F32(u[1]) + sub.z * F32(u[2])) / norm
        angle_mm = np.arccos(np.clip(cos, -1.0, 1.0)) * norm
        bump = F32(self.thickness_mm) * np.maximum(F32(1.0) - (angle_mm / F32(self.radius_mm)) ** 2, 0.0)
        d = tissue.d_cav[index]
        outer = F32(anatomy.skull_mm * 1.2 + anatomy.scalp_fat_mm + 4.0) + bump
        mask = (bump > 0) & (d > 0) & (d < outer) & ~tissue.bone[index] & (tissue.hu[index] < F32(100.0))
        view = tissue.hu[index]
        view[mask] = self.hu


@dataclass(frozen=True)
class Streak:
    """A straight band in the head's axial plane: ``amplitude_hu * exp(-(dist / width)**2)``."""

    point_xy: tuple[float, float]
    angle_deg: float
    width_mm: float
    amplitude_hu: float

    def add(self, pts: Points, hu: np.ndarray, weight: np.ndarray) -> None:
        theta = np.deg2rad(self.angle_deg)
        dist = (pts.x - F32(self.point_xy[0])) * F32(np.sin(theta)) - (pts.y - F32(self.point_xy[1])) * F32(
            np.cos(theta)
        )
        hu += F32(self.amplitude_hu) * np.exp(-((dist / F32(self.width_mm)) ** 2)) * weight


def apply_streaks(pts: Points, tissue: Tissue, streaks: tuple[Streak, ...]) -> None:
    """Add beam-hardening streaks inside the cavity near the petrous level."""
    if not streaks:
        return
    near = np.abs(pts.z - F32(PETROUS_Z_MM)) < F32(20.0)
    near &= tissue.cavity
    if not near.any():
        return
    sub = Points(pts.x[near], pts.y[near], pts.z[near])
    weight = np.exp(-(((sub.z - F32(PETROUS_Z_MM)) / F32(8.0)) ** 2))
    values = tissue.hu[near]
    for streak in streaks:
        streak.add(sub, values, weight)
    tissue.hu[near] = values


def sample_calcifications(rng: np.random.Generator, anatomy: Anatomy) -> list[Calcification]:
    """Choroid plexus (55 %), pineal (50 %), basal ganglia (12 %) and falx (15 %) calcifications."""
    calcs: list[Calcification] = []
    if rng.random() < 0.55:
        sides = (-1.0, 1.0) if rng.random() < 0.8 else (float(rng.choice([-1.0, 1.0])),)
        for side in sides:
            atrium = lateral_ventricle_parts(anatomy, side)[2][0]
            center = tuple(np.asarray(atrium) + (rng.normal(0, 1.0), 1.0 + rng.normal(0, 1.0), rng.normal(0, 1.0)))
            r = rng.uniform(1.5, 4.0)
            calcs.append(Calcification("choroid plexus", center, (r, r * rng.uniform(0.8, 1.4), r), rng.uniform(120, 400)))
    if rng.random() < 0.5:
        r = rng.uniform(1.5, 4.0)
        calcs.append(Calcification("pineal", (0.0, 17.0, -2.0), (r, r, r), rng.uniform(100, 350)))
    if rng.random() < 0.12:
        r, peak = rng.uniform(2.0, 4.0), rng.uniform(100, 250)
        for side in (-1.0, 1.0):
            calcs.append(Calcification("basal ganglia", (side * 19.0, -2.0, -1.0), (r, 1.5 * r, r), peak))
    if rng.random() < 0.15:
        center = (0.0, rng.uniform(-40.0, 40.0), rng.uniform(30.0, 52.0))
        semi = (1.2, rng.uniform(5.0, 12.0), rng.uniform(2.0, 5.0))
        calcs.append(Calcification("falx", center, semi, rng.uniform(150, 600), shifted=False))
    return calcs


def sample_scalp_swelling(rng: np.random.Generator, probability: float) -> ScalpSwelling | None:
    """A scalp lump with the given probability, over the lateral or upper convexity."""
    if rng.random() >= probability:
        return None
    azimuth, elevation = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(-10, 60))
    direction = (np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation))
    return ScalpSwelling(direction, rng.uniform(20.0, 45.0), rng.uniform(5.0, 14.0), rng.uniform(35.0, 60.0))


def sample_streaks(rng: np.random.Generator) -> tuple[Streak, ...]:
    """A Hounsfield bar between the petrous apices and 1 to 4 thin streaks from them."""
    streaks = [Streak((0.0, rng.uniform(0.0, 10.0)), rng.normal(0.0, 5.0), rng.uniform(3.0, 6.0), -rng.uniform(10, 35))]
    for _ in range(int(rng.integers(1, 5))):
        side = float(rng.choice([-1.0, 1.0]))
        amplitude = rng.uniform(15.0, 40.0) * (1.0 if rng.random() < 0.6 else -1.0)
        point = (side * rng.uniform(12.0, 24.0), rng.uniform(-2.0, 10.0))
        streaks.append(Streak(point, rng.uniform(-45.0, 45.0), rng.uniform(0.7, 1.6), amplitude))
    return tuple(streaks)
