"""Which bleeds a positive study has, where, and how big.

A positive study follows one clinical scenario; each scenario adds subtypes with the
probabilities below (at least one lesion; trauma is redrawn until it has one):

=============  ======  ==============================================================
scenario       share   subtypes (probability)
=============  ======  ==============================================================
trauma         50 %    EDH .45, SDH .50, SAH convexity .30, IPH contusion .15, IVH .05
hypertensive   20 %    IPH deep (putamen, thalamus, cerebellum, pons) 1, IVH extension .45
aneurysmal     15 %    SAH basal cisterns 1, IVH .30, IPH frontal/temporal .15, SDH .10
ventricular    15 %    IVH 1, IPH .05
=============  ======  ==============================================================

so each subtype is present in roughly 30 % of positive studies (seed 0, 200 studies: 100
positive; epidural 32, intraparenchymal 31, intraventricular 35, subarachnoid 36, subdural 31
studies; 19 % of slices positive). This is deliberately unlike RSNA 2019, where epidural
bleeds are under 1 % of slices: the phantom must teach every subtype from about a hundred
positive training studies.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ich_edge.synth.anatomy import (
    CSF_AMBIENT,
    CSF_EXTRA_AXIAL,
    CSF_INTERHEMISPHERIC,
    CSF_POSTERIOR_FOSSA,
    CSF_SULCUS,
    CSF_SUPRASELLAR,
    CSF_SYLVIAN,
    Anatomy,
    cavity_q,
)
from ich_edge.synth.brain import lateral_ventricle_parts
from ich_edge.synth.lesions import (
    Epidural,
    Lesion,
    Parenchymal,
    Subarachnoid,
    Subdural,
    Ventricular,
    bone_of,
    inside_bone_mm,
)
from ich_edge.synth.pose import Points, Pose
from ich_edge.synth.shapes import WaveField

SCENARIOS = {
    "trauma": (0.50, {"epidural": 0.45, "subdural": 0.50, "subarachnoid": 0.30, "intraparenchymal": 0.15, "intraventricular": 0.05}),
    "hypertensive": (0.20, {"intraparenchymal": 1.0, "intraventricular": 0.45}),
    "aneurysmal": (0.15, {"subarachnoid": 1.0, "intraventricular": 0.30, "intraparenchymal": 0.15, "subdural": 0.10}),
    "ventricular": (0.15, {"intraventricular": 1.0, "intraparenchymal": 0.05}),
}
MAX_SHIFT_MM = 12.0


def _blood_hu(rng: np.random.Generator, low: float = 52.0, high: float = 88.0) -> float:
    """Acute blood; 8 % hyperacute or anemic (42 to 50 HU)."""
    return float(rng.uniform(42.0, 50.0) if rng.random() < 0.08 else rng.uniform(low, high))


def _texture(rng: np.random.Generator, wavelength_mm=(6.0, 14.0)) -> WaveField:
    return WaveField(rng, 6, wavelength_mm)


def _direction(side: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector: ``azimuth`` from the lateral (side) direction towards the back, ``elevation`` up."""
    a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.array([side * np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])


def surface_point(anatomy: Anatomy, direction: np.ndarray) -> np.ndarray:
    """Where the ray from the cavity centre along ``direction`` meets the inner table."""
    u = np.asarray(direction, np.float64)
    q = float(cavity_q(Points(*(np.float32([c]) for c in u)), anatomy)[0])
    return u / np.sqrt(q)


def _log_uniform(rng, low, high) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sample_epidural(rng: np.random.Generator, anatomy: Anatomy) -> Epidural:
    bone = str(rng.choice(["temporal", "parietal", "frontal", "occipital"], p=[0.4, 0.3, 0.18, 0.12]))
    side = float(rng.choice([-1.0, 1.0]))
    for _ in range(200):
        if bone == "temporal":
            u = _direction(side, rng.uniform(-30, 30), rng.uniform(-12, 8))
        elif bone == "parietal":
            u = _direction(side, rng.uniform(-10, 50), rng.uniform(25, 55))
        elif bone == "frontal":
            u = _direction(side, rng.uniform(-80, -45), rng.uniform(0, 40))
        else:
            u = _direction(side, rng.uniform(50, 85), rng.uniform(-10, 25))
        point = surface_point(anatomy, u)
        if bone_of(*point) == bone and float(inside_bone_mm(bone, side, *np.float32(point))) >= 14.0:
            break
    half = rng.uniform(18.0, 40.0)
    extent = (half, half * rng.uniform(0.75, 1.2))
    thickness = float(np.clip(rng.uniform(0.3, 0.6) * half, 7.0, 30.0))
    center = point - u * thickness / 2.0
    return Epidural(
        "epidural", tuple(center), max(extent) * 1.4 + thickness, _blood_hu(rng, 55.0, 90.0), _texture(rng),
        surface_point=tuple(point), half_extent_mm=extent, thickness_mm=thickness,
        bone=bone, side=side, swirl=bool(rng.random() < 0.2),
    )


def sample_subdural(rng: np.random.Generator, anatomy: Anatomy) -> Subdural:
    side = float(rng.choice([-1.0, 1.0]))
    if rng.random() < 0.12:
        thickness = rng.uniform(3.0, 7.0)
        center = (side * (0.5 + thickness / 2.0), rng.uniform(-30.0, 30.0), rng.uniform(20.0, 45.0))
        extent = (rng.uniform(25.0, 45.0), rng.uniform(12.0, 25.0))
        return Subdural(
            "subdural", center, max(extent) + thickness, _blood_hu(rng, 55.0, 85.0), _texture(rng),
            half_extent_mm=extent, thickness_mm=thickness, side=side, along_falx=True,
        )
    u = _direction(side, rng.uniform(-35, 35), rng.uniform(5, 40))
    point = surface_point(anatomy, u)
    extent = (rng.uniform(55.0, 100.0), rng.uniform(40.0, 70.0))
    thickness = _log_uniform(rng, 3.5, 18.0)
    center = point - u * thickness / 2.0
    return Subdural(
        "subdural", tuple(center), max(extent) * 1.2 + thickness, _blood_hu(rng), _texture(rng),
        surface_point=tuple(point), half_extent_mm=extent, thickness_mm=thickness, side=side,
    )


DEEP_SITES = {  # location: (probability, centre for side +1, radius range mm)
    "putamen": (0.45, (24.0, -3.0, 0.0), (6.0, 22.0)),
    "thalamus": (0.25, (11.0, 9.0, 3.0), (5.0, 14.0)),
    "cerebellum": (0.18, (22.0, 48.0, -45.0), (6.0, 16.0)),
    "pons": (0.12, (0.0, 12.0, -36.0), (4.5, 8.0)),
}


def sample_parenchymal(rng: np.random.Generator, anatomy: Anatomy, kind: str) -> Parenchymal:
    """``kind``: "deep" (hypertensive), "contusion" (trauma) or "lobar" (aneurysmal, frontal/temporal)."""
    side = float(rng.choice([-1.0, 1.0]))
    if kind == "deep":
        names = list(DEEP_SITES)
        location = str(rng.choice(names, p=[DEEP_SITES[n][0] for n in names]))
        _, base, (low, high) = DEEP_SITES[location]
        radius = _log_uniform(rng, low, high)
        jitter = rng.normal(0.0, 4.0 if location == "cerebellum" else 1.5, 3)
        center = np.array([side * base[0], base[1], base[2]]) + jitter
        if location == "pons":
            center[0] = rng.normal(0.0, 2.0)
    else:
        location = "lobar"
        radius = _log_uniform(rng, 5.0, 14.0) if kind == "contusion" else _log_uniform(rng, 7.0, 22.0)
        if rng.random() < 0.5:  # frontal lobe
            u = _direction(side, rng.uniform(-80, -50), rng.uniform(-5, 30))
        else:  # temporal lobe
            u = _direction(side, rng.uniform(-35, 15), rng.uniform(-22, 0))
        center = surface_point(anatomy, u) - u * (radius + anatomy.csf_mm + rng.uniform(3.0, 10.0))
    semi = tuple(radius * rng.uniform(0.75, 1.15, 3) * np.array([1.0, 1.0, 0.9]))
    return Parenchymal(
        "intraparenchymal", tuple(center), max(semi) * 1.6 + 12.0, _blood_hu(rng, 58.0, 88.0), _texture(rng),
        semi_mm=semi, yaw_deg=rng.uniform(-40, 40), edema_mm=rng.uniform(0.15, 0.45) * radius + 1.5,
        edema_hu=anatomy.hu["white"] - rng.uniform(6.0, 12.0), location=location,
    )


def _support_mm(center, semi, yaw_deg, direction) -> float:
    """Largest projection of an ellipsoid onto ``direction``."""
    c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    g = np.asarray(direction)
    g_local = np.array([c * g[0] + s * g[1], -s * g[0] + c * g[1], g[2]])
    return float(np.dot(center, g) + np.sqrt(np.sum((np.asarray(semi) * g_local) ** 2)))


def sample_ventricular(
    rng: np.random.Generator, anatomy: Anatomy, pose: Pose, near: Parenchymal | None = None
) -> Ventricular:
    """Layering in the dependent horns (below a level), plus a cast near ``near`` or at random."""
    down = pose.rotation.T @ np.array([0.0, 1.0, 0.0])  # supine: gravity points to scanner +y
    sides = (-1.0, 1.0) if rng.random() < 0.7 else (float(rng.choice([-1.0, 1.0])),)
    ids = tuple(1 if side < 0 else 2 for side in sides)
    shift = anatomy.midline_shift_mm
    deepest = max(
        _support_mm(np.asarray(c) + [shift * 0.9, 0.0, 0.0], semi, yaw, down)
        for side in sides
        for c, semi, yaw in lateral_ventricle_parts(anatomy, side)[2:4]
    )
    level = deepest - rng.uniform(7.0, 15.0)
    cast_ids: tuple[int, ...] = ()
    cast_center, cast_radius = (0.0, 0.0, 0.0), 0.0
    if near is not None:
        side = 1.0 if near.center[0] > 0 else -1.0
        cast_ids = (1 if side < 0 else 2,)
        parts = lateral_ventricle_parts(anatomy, side)
        nearest = min(parts, key=lambda part: np.linalg.norm(np.subtract(part[0], near.center)))
        cast_center, cast_radius = nearest[0], max(near.semi_mm) + rng.uniform(5.0, 15.0)
    elif rng.random() < 0.6:
        choice = rng.random()
        if choice < 0.5:
            side = float(rng.choice([-1.0, 1.0]))
            cast_ids = (1 if side < 0 else 2,)
            cast_center = lateral_ventricle_parts(anatomy, side)[int(rng.integers(0, 3))][0]
            cast_radius = rng.uniform(12.0, 30.0)
        elif choice < 0.8:
            cast_ids, cast_center, cast_radius = (3,), (0.0, -4.0, -4.0), rng.uniform(10.0, 16.0)
        else:
            cast_ids, cast_center, cast_radius = (4,), (0.0, 29.0, -41.0), rng.uniform(8.0, 12.0)
    return Ventricular(
        "intraventricular", (0.0, 10.0, 0.0), 75.0, _blood_hu(rng, 50.0, 80.0), _texture(rng),
        ventricle_ids=ids, down=tuple(down), level_mm=level,
        cast_ids=cast_ids, cast_center=tuple(cast_center), cast_radius_mm=cast_radius,
    )


def sample_subarachnoid(rng: np.random.Generator, anatomy: Anatomy, basal: bool) -> Subarachnoid:
    texture = _texture(rng, (15.0, 30.0))
    if basal:
        center = np.array([0.0, -8.0, -18.0]) + rng.normal(0.0, 4.0, 3)
        kinds = (CSF_SUPRASELLAR, CSF_SYLVIAN, CSF_AMBIENT, CSF_INTERHEMISPHERIC, CSF_POSTERIOR_FOSSA, CSF_SULCUS)
        return Subarachnoid(
            "subarachnoid", tuple(center), rng.uniform(30.0, 55.0), _blood_hu(rng, 52.0, 80.0), texture,
            csf_kinds=kinds, fill_threshold=rng.uniform(-1.0, -0.2), distend_mm=rng.uniform(0.3, 0.8),
        )
    side = float(rng.choice([-1.0, 1.0]))
    u = _direction(side, rng.uniform(-60, 60), rng.uniform(-5, 55))
    center = surface_point(anatomy, u) - u * 8.0
    kinds = (CSF_SULCUS, CSF_EXTRA_AXIAL, CSF_SYLVIAN, CSF_INTERHEMISPHERIC)
    return Subarachnoid(
        "subarachnoid", tuple(center), rng.uniform(22.0, 45.0), _blood_hu(rng, 50.0, 75.0), texture,
        csf_kinds=kinds, fill_threshold=rng.uniform(-0.8, 0.1), distend_mm=rng.uniform(0.4, 1.0),
    )


def _mass_effect_mm(lesion: Lesion) -> float:
    """Midline shift (mm, signed towards the patient's left) caused by one lesion."""
    if isinstance(lesion, Epidural):
        amount, side = max(lesion.thickness_mm - 10.0, 0.0) * 0.5, lesion.surface_point[0]
    elif isinstance(lesion, Subdural) and not lesion.along_falx:
        amount, side = max(lesion.thickness_mm - 5.0, 0.0) * 0.6, lesion.side
    elif isinstance(lesion, Parenchymal) and lesion.location in ("putamen", "thalamus", "lobar"):
        amount, side = max(max(lesion.semi_mm) - 12.0, 0.0) * 0.5, lesion.center[0]
    else:
        return 0.0
    return -float(np.sign(side)) * amount


def sample_lesions(
    rng: np.random.Generator, anatomy: Anatomy, pose: Pose
) -> tuple[str, float, tuple[Lesion, ...]]:
    """(scenario, midline shift in mm, lesions) of one positive study."""
    names = list(SCENARIOS)
    scenario = str(rng.choice(names, p=[SCENARIOS[n][0] for n in names]))
    probabilities = SCENARIOS[scenario][1]
    while True:
        chosen = {subtype for subtype, p in probabilities.items() if rng.random() < p}
        if chosen:
            break
    lesions: list[Lesion] = []
    if "epidural" in chosen:
        lesions.append(sample_epidural(rng, anatomy))
    if "subdural" in chosen:
        lesions.append(sample_subdural(rng, anatomy))
    iph = None
    if "intraparenchymal" in chosen:
        kind = {"trauma": "contusion", "hypertensive": "deep"}.get(scenario, "lobar")
        iph = sample_parenchymal(rng, anatomy, kind)
        lesions.append(iph)
        if kind == "contusion" and rng.random() < 0.4:  # coup-contrecoup: a second contusion
            lesions.append(sample_parenchymal(rng, anatomy, kind))
    if "subarachnoid" in chosen:
        lesions.append(sample_subarachnoid(rng, anatomy, basal=scenario == "aneurysmal"))
    shift = float(np.clip(sum(_mass_effect_mm(lesion) for lesion in lesions), -MAX_SHIFT_MM, MAX_SHIFT_MM))
    if "intraventricular" in chosen:
        extends = iph is not None and iph.location in ("putamen", "thalamus")
        shifted = replace(anatomy, midline_shift_mm=shift)
        lesions.append(sample_ventricular(rng, shifted, pose, near=iph if extends else None))
    return scenario, shift, tuple(lesions)
