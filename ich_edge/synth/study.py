"""One phantom study: its plan (every random choice) and the rendering of its slices.

:func:`plan_study` draws everything about study ``index`` from
``numpy.random.default_rng([seed, index])``: anatomy, pose, bleeds, hard negatives, slice
positions, noise level, identifiers. Rendering a slice is then a pure function of the plan,
so studies can be generated in any order, by any number of processes, with identical output.

A slice is 5 mm thick. Where the slab crosses a tissue boundary (the skull cut tangentially
at the vertex, the orbital roofs and middle fossa floor at the skull base), the HU are the
mean over three planes through the slab (partial volume); elsewhere the central plane is used.
Lesion masks, and so the labels, come from the central plane: a slice is positive for a
subtype when that subtype's blood covers at least :data:`MIN_LESION_AREA_MM2` of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pydicom.uid import generate_uid

from ich_edge import LABELS, SUBTYPES
from ich_edge.synth.anatomy import (
    REGION_BRAINSTEM,
    REGION_CEREBELLUM,
    Anatomy,
    Tissue,
    cavity_distance,
    cavity_q,
    sample_anatomy,
)
from ich_edge.synth.config import SynthConfig
from ich_edge.synth.head import render_tissue
from ich_edge.synth.lesions import Lesion
from ich_edge.synth.mimics import (
    Calcification,
    ScalpSwelling,
    Streak,
    apply_streaks,
    sample_calcifications,
    sample_scalp_swelling,
    sample_streaks,
)
from ich_edge.synth.pose import Points, Pose, SlicePoints, rotation_matrix
from ich_edge.synth.scenario import sample_lesions
from ich_edge.synth.shapes import F32

MIN_LESION_AREA_MM2 = 10.0  # about 3 pixels at 128 px over a 230 mm field of view
SLICE_THICKNESS_MM = 5.0
SUBPLANE_OFFSETS_MM = (-5.0 / 3.0, 5.0 / 3.0)  # with the central plane: 3 samples
PAD_HU = -2000.0  # value some scanners store outside the reconstruction circle
REFERENCE_PIXEL_MM = 0.45  # noise SD is specified at this pixel size


@dataclass(frozen=True)
class StudyPlan:
    """Every random choice of one study; rendering is a pure function of it."""

    seed: int
    index: int
    scenario: str  # "negative", "trauma", "hypertensive", "aneurysmal" or "ventricular"
    anatomy: Anatomy
    pose: Pose
    lesions: tuple[Lesion, ...]
    calcifications: tuple[Calcification, ...]
    swelling: ScalpSwelling | None
    streaks: tuple[Streak, ...]
    matrix_px: int
    pixel_mm: float
    z_positions_mm: tuple[float, ...]  # ascending, scanner z of each slice centre
    noise_sd_hu: float
    pad_outside_fov: bool
    headrest: tuple[float, ...] | None  # centre x, y, semi-axes x, y, thickness (mm), HU
    instance_numbers: tuple[int, ...]  # per slice in position order
    write_order: tuple[int, ...]
    study_uid: str
    series_uid: str
    slice_ids: tuple[str, ...]

    @property
    def num_slices(self) -> int:
        return len(self.z_positions_mm)

    @property
    def origin_xy_mm(self) -> tuple[float, float]:
        """Scanner (x, y) of the centre of the top-left pixel; the isocentre is the image centre."""
        half = self.matrix_px * self.pixel_mm / 2.0
        return (-half + self.pixel_mm / 2.0, -half + self.pixel_mm / 2.0)


@dataclass
class RenderedSlice:
    hu: np.ndarray  # float32 (matrix_px, matrix_px)
    labels: np.ndarray  # uint8 (6,), LABELS order
    masks: dict[str, np.ndarray]  # subtype -> bool mask of its blood on the central plane
    tissue: Tissue  # central-plane anatomy (before noise)


_ID_MASK = (1 << 36) - 1


def slice_id(seed: int, index: int, position: int) -> str:
    """``ID_<9 hex>``, unique within a seed: a keyed bijection of ``index * 1024 + position``."""
    key = int(np.random.SeedSequence([seed, 0x1D]).generate_state(1, np.uint64)[0]) & _ID_MASK
    value = ((index << 10) + position) ^ key
    for multiplier in (0x9E3779B97, 0x7F4A7C15B):  # odd: multiplication mod 2**36 is a bijection
        value = (value * multiplier) & _ID_MASK
        value ^= value >> 17
    return f"ID_{value:09x}"


def sample_pose(rng: np.random.Generator) -> Pose:
    """Head placement: in-plane rotation, roll, tilt 0 to 20 degrees, size and position."""
    yaw = float(np.clip(rng.normal(0.0, 5.0), -15.0, 15.0)) if rng.random() > 0.1 else rng.uniform(-20.0, 20.0)
    pitch = rng.uniform(-5.0, 20.0)
    roll = float(np.clip(rng.normal(0.0, 3.0), -8.0, 8.0))
    center = np.array([np.clip(rng.normal(0.0, 6.0), -15.0, 15.0), rng.uniform(-5.0, 15.0), rng.uniform(-150.0, 50.0)])
    return Pose(rotation_matrix(yaw, pitch, roll), center, rng.uniform(0.9, 1.1))


def _fibonacci_upper(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = i / n
    phi = np.pi * (1.0 + 5.0**0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _coverage(rng: np.random.Generator, anatomy: Anatomy, pose: Pose, config: SynthConfig) -> tuple[float, ...]:
    """Slice centres from the skull base (foramen magnum, orbit floors) to just past the vertex."""
    landmarks = np.array([[0.0, 24.0, -68.0], [31.0, -67.0, -52.0], [-31.0, -67.0, -52.0], [0.0, -22.0, -62.0]])
    start = float(pose.to_scanner(landmarks)[:, 2].min()) - rng.uniform(0.0, 10.0)
    directions = _fibonacci_upper(300)
    pts = Points(*(directions[:, i].astype(np.float32) for i in range(3)))
    radius = 1.0 / np.sqrt(cavity_q(pts, anatomy).astype(np.float64))
    outer = directions * (radius + anatomy.skull_mm + 8.0)[:, None]
    top = float(pose.to_scanner(outer)[:, 2].max()) + rng.uniform(-4.0, 6.0)
    mode = rng.random()
    if mode < 0.07:  # extended down to the maxilla / C2
        start -= rng.uniform(20.0, 45.0)
    elif mode < 0.12:  # started high, at the orbits
        start += rng.uniform(25.0, 45.0)
    pick = rng.random()
    increment = 4.0 if pick < 0.08 else 3.0 if pick < 0.15 else SLICE_THICKNESS_MM
    count = int(np.floor((top - start) / increment)) + 1
    if not config.slices_min <= count <= config.slices_max:
        count = int(np.clip(count, config.slices_min, config.slices_max))
        increment = (top - start) / max(count - 1, 1)
    return tuple(float(z) for z in start + increment * np.arange(count))


def plan_study(config: SynthConfig, index: int) -> StudyPlan:
    """Draw study ``index`` of the set described by ``config``."""
    rng = np.random.default_rng([config.seed, index])
    anatomy = sample_anatomy(rng)
    pose = sample_pose(rng)
    calcifications = tuple(sample_calcifications(rng, anatomy))
    scenario, shift, lesions = "negative", 0.0, ()
    if rng.random() < config.positive_fraction:
        scenario, shift, lesions = sample_lesions(rng, anatomy, pose)
    swelling = sample_scalp_swelling(rng, 0.5 if scenario == "trauma" else 0.08)
    streaks = sample_streaks(rng)
    anatomy = replace(anatomy, midline_shift_mm=shift)
    fov_mm = rng.uniform(max(215.0, 225.0 * pose.scale), 250.0)
    z_positions = _coverage(rng, anatomy, pose, config)
    n = len(z_positions)
    order = rng.random()
    if order < 0.55:
        numbers = np.arange(1, n + 1)
    elif order < 0.85:
        numbers = np.arange(n, 0, -1)
    else:
        numbers = rng.permutation(n) + 1
    headrest = None
    if rng.random() < 0.7:
        gap = rng.uniform(14.0, 24.0)
        semi = (pose.scale * (anatomy.semi_mm[0] + gap), pose.scale * (anatomy.semi_mm[1] + gap))
        headrest = (pose.center_mm[0], pose.center_mm[1], *semi, rng.uniform(2.0, 5.0), rng.uniform(80.0, 250.0))
    entropy = ["ich-edge-synth", str(config.seed), str(index)]
    return StudyPlan(
        seed=config.seed,
        index=index,
        scenario=scenario,
        anatomy=anatomy,
        pose=pose,
        lesions=lesions,
        calcifications=calcifications,
        swelling=swelling,
        streaks=streaks,
        matrix_px=config.matrix_px,
        pixel_mm=fov_mm / config.matrix_px,
        z_positions_mm=z_positions,
        noise_sd_hu=rng.uniform(4.0, 8.0),
        pad_outside_fov=bool(rng.random() < 0.15),
        headrest=headrest,
        instance_numbers=tuple(int(v) for v in numbers),
        write_order=tuple(int(v) for v in rng.permutation(n)),
        study_uid=generate_uid(entropy_srcs=[*entropy, "study"]),
        series_uid=generate_uid(entropy_srcs=[*entropy, "series"]),
        slice_ids=tuple(slice_id(config.seed, index, k) for k in range(n)),
    )


def slice_points(plan: StudyPlan, position: int) -> SlicePoints:
    return SlicePoints(plan.pose, plan.origin_xy_mm, plan.pixel_mm, plan.matrix_px, plan.z_positions_mm[position])


def render_points(plan: StudyPlan, pts: Points) -> tuple[Tissue, dict[str, np.ndarray]]:
    """Anatomy, hard negatives and bleeds at ``pts``; returns the tissue and blood masks per subtype."""
    tissue = render_tissue(pts, plan.anatomy)
    for calcification in plan.calcifications:
        calcification.paint(pts, tissue, plan.anatomy.midline_shift_mm)
    if plan.swelling is not None:
        plan.swelling.paint(pts, tissue, plan.anatomy)
    masks = {subtype: np.zeros(pts.shape, bool) for subtype in SUBTYPES}
    for lesion in plan.lesions:
        masks[lesion.subtype] |= lesion.paint(pts, tissue)
    apply_streaks(pts, tissue, plan.streaks)
    return tissue, masks


def _boundary_code(pts: Points, anatomy: Anatomy, floor_mm: np.ndarray, floor_thickness_mm: np.ndarray) -> np.ndarray:
    """Coarse tissue class whose change across the slab marks a partial-volume pixel."""
    d, _ = cavity_distance(pts, anatomy)
    code = (d < 0).astype(np.uint8)
    code |= (d < F32(anatomy.inner_table_mm)).astype(np.uint8) << 1
    code |= (d < F32(anatomy.skull_mm)).astype(np.uint8) << 2
    code |= (d < F32(anatomy.skull_mm + 8.0)).astype(np.uint8) << 3
    code |= (floor_mm < 0).astype(np.uint8) << 4
    code |= (floor_mm < floor_thickness_mm).astype(np.uint8) << 5
    return code


def partial_volume_pixels(plan: StudyPlan, pts: SlicePoints, tissue: Tissue) -> np.ndarray:
    """Pixels whose 5 mm slab crosses the cavity, skull, scalp or skull-base floor boundary."""
    half = SLICE_THICKNESS_MM / 2.0
    anatomy = plan.anatomy
    # Across the slab a point moves at most half / scale mm in the head frame, so only pixels
    # that close to one of the boundaries can change class.
    reach = F32(half / plan.pose.scale + 0.5)
    d, floor, thick = tissue.d_cav, tissue.floor_mm, tissue.floor_thickness_mm
    near = (d > -reach) & (d < F32(anatomy.skull_mm + 8.0) + reach)
    near |= (floor > -reach) & (floor < thick + reach)
    mixed = np.zeros(pts.shape, bool)
    if not near.any():
        return mixed
    # The floor is a height field: across the slab its depth changes by the z component of the
    # slab's direction (x and y move by under a millimetre).
    dz = F32(plan.pose.rotation[2, 2] * half / plan.pose.scale)
    floor, thick = floor[near], thick[near]
    centre = Points(pts.x[near], pts.y[near], pts.z[near])
    code = _boundary_code(centre, anatomy, floor, thick)
    low = _boundary_code(pts.offset(-half, plan.pose, near), anatomy, floor + dz, thick)
    high = _boundary_code(pts.offset(half, plan.pose, near), anatomy, floor - dz, thick)
    mixed[near] = (code != low) | (code != high)
    return mixed


def _smoothed_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Unit-variance Gaussian noise correlated over about 1.5 pixels (binomial 5-tap blur)."""
    white = rng.standard_normal((size + 4, size + 4), dtype=np.float32)
    taps = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / F32(16.0)
    rows = sum(taps[i] * white[i : i + size, :] for i in range(5))
    both = sum(taps[i] * rows[:, i : i + size] for i in range(5))
    return both * F32(1.0 / (70.0 / 256.0))


def render_slice(plan: StudyPlan, position: int, noise: bool = True) -> RenderedSlice:
    """Render slice ``position`` (0 = lowest) of the study: HU, labels and masks."""
    pts = slice_points(plan, position)
    tissue, masks = render_points(plan, pts)
    hu = tissue.hu.copy()
    mixed = partial_volume_pixels(plan, pts, tissue)
    if mixed.any():
        total = hu[mixed]
        for dz in SUBPLANE_OFFSETS_MM:
            sub_tissue, _ = render_points(plan, pts.offset(dz, plan.pose, mixed))
            total = total + sub_tissue.hu
        hu[mixed] = total / F32(1 + len(SUBPLANE_OFFSETS_MM))
    _draw_headrest(plan, hu)
    if noise:
        rng = np.random.default_rng([plan.seed, plan.index, 1 + position])
        sd = plan.noise_sd_hu * min(1.0, 1.6 * REFERENCE_PIXEL_MM / plan.pixel_mm)
        fossa = np.isin(tissue.region, (REGION_CEREBELLUM, REGION_BRAINSTEM))
        hu += _smoothed_noise(rng, plan.matrix_px) * np.where(fossa, F32(1.4 * sd), F32(sd))
    np.clip(hu, -1024.0, 3071.0, out=hu)
    if plan.pad_outside_fov:
        hu[_outside_fov(plan)] = PAD_HU
    pixel_area = plan.pixel_mm**2
    labels = np.zeros(len(LABELS), np.uint8)
    for i, subtype in enumerate(SUBTYPES):
        labels[i] = masks[subtype].sum() * pixel_area >= MIN_LESION_AREA_MM2
    labels[-1] = labels[:-1].max()
    return RenderedSlice(hu, labels, masks, tissue)


def _scanner_xy(plan: StudyPlan) -> tuple[np.ndarray, np.ndarray]:
    x0, y0 = plan.origin_xy_mm
    steps = np.arange(plan.matrix_px, dtype=np.float32) * F32(plan.pixel_mm)
    return (F32(x0) + steps)[None, :], (F32(y0) + steps)[:, None]


def _outside_fov(plan: StudyPlan) -> np.ndarray:
    x, y = _scanner_xy(plan)
    radius = plan.matrix_px * plan.pixel_mm / 2.0
    return x**2 + y**2 > F32(radius**2)


def _draw_headrest(plan: StudyPlan, hu: np.ndarray) -> None:
    """A curved head holder behind the head (plastic, 80 to 250 HU), drawn where there is air."""
    if plan.headrest is None:
        return
    cx, cy, semi_x, semi_y, thickness, value = plan.headrest
    x, y = _scanner_xy(plan)
    root = np.sqrt(((x - F32(cx)) / F32(semi_x)) ** 2 + ((y - F32(cy)) / F32(semi_y)) ** 2)
    band = np.abs(root - F32(1.0)) * F32(min(semi_x, semi_y)) < F32(thickness / 2.0)
    band &= (y > F32(cy + 0.2 * semi_y)) & (hu < F32(-900.0))
    hu[band] = value
