"""The phantom head: per-study anatomy parameters and the tissue renderer.

The cranial cavity is an egg-shaped ellipsoid in the head frame (see :mod:`.pose`) cut from
below by the skull-base floor (anterior, middle and posterior fossae, petrous ridges, clivus;
:mod:`.skullbase`). Around it lie the skull (inner table, diploe, outer table) and the scalp
(galea or temporalis muscle, subcutaneous fat, skin); inside it the brain (:mod:`.brain`).
Hounsfield units follow the table in docs/domain.md and vary from study to study.

:func:`ich_edge.synth.head.render_tissue` evaluates the whole head on any set of head-frame
points and returns a :class:`Tissue`: the HU values plus the masks and distance fields that
lesions and tests use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ich_edge.synth.pose import Points
from ich_edge.synth.shapes import F32, WaveField

HU_AIR = -1000.0

# csf_kind codes (Tissue.csf_kind): which CSF space a pixel belongs to.
CSF_NONE, CSF_SULCUS, CSF_EXTRA_AXIAL, CSF_SYLVIAN, CSF_SUPRASELLAR, CSF_INTERHEMISPHERIC = 0, 1, 2, 3, 4, 5
CSF_AMBIENT, CSF_POSTERIOR_FOSSA = 6, 7

# ventricle_id codes.
VENT_RIGHT_LATERAL, VENT_LEFT_LATERAL, VENT_THIRD, VENT_FOURTH = 1, 2, 3, 4

# region codes.
REGION_CEREBRUM, REGION_CEREBELLUM, REGION_BRAINSTEM = 1, 2, 3


@dataclass(frozen=True)
class Anatomy:
    """One phantom's anatomy: sizes in head-frame mm, densities in HU.

    Built by :func:`sample_anatomy`; lesions may replace ``midline_shift_mm``.
    """

    semi_mm: tuple[float, float, float, float]  # cavity semi-axes x, y, z up, z down
    skull_mm: float
    inner_table_mm: float
    outer_table_mm: float
    scalp_fat_mm: float
    temporalis_mm: float
    csf_mm: float  # extra-axial CSF layer
    atrophy: float  # 0 young .. 1 old: wider sulci, larger ventricles
    ventricle_scale: float
    sulcus_half_mm: float
    interhemispheric_half_mm: float
    frontal_sinus_mm: float  # half-width of the frontal sinus; 0 when absent
    hu: dict = field(repr=False)
    sulci: WaveField = field(repr=False)
    sulcal_depth: WaveField = field(repr=False)
    folia: WaveField = field(repr=False)
    air_cells: WaveField = field(repr=False)
    floor_relief: WaveField = field(repr=False)
    midline_shift_mm: float = 0.0  # + moves midline structures toward the patient's left


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw a head: cavity size and shape, skull and scalp, atrophy and tissue densities."""
    atrophy = float(rng.beta(2.0, 3.0))
    white = rng.uniform(24.0, 29.0)
    gray = white + rng.uniform(9.0, 13.0)
    dense_sinus = rng.random() < 0.3
    hu = {
        "white": white,
        "gray": gray,
        "deep_gray": (gray + white) / 2.0 + 1.0,
        "brainstem": white + 5.0,
        "csf": rng.uniform(3.0, 10.0),
        "cortical": rng.uniform(1300.0, 1900.0),
        "diploe": rng.uniform(500.0, 900.0),
        "petrous": rng.uniform(1600.0, 2000.0),
        "fat": rng.uniform(-110.0, -70.0),
        "scalp_fat": rng.uniform(-12.0, 20.0),  # fat mixed with fibrous septa
        "muscle": rng.uniform(35.0, 50.0),
        "skin": rng.uniform(30.0, 45.0),
        "sinus": rng.uniform(58.0, 72.0) if dense_sinus else rng.uniform(40.0, 52.0),
        "falx": rng.uniform(48.0, 65.0),
        "vitreous": rng.uniform(5.0, 15.0),
        "lens": rng.uniform(90.0, 130.0),
    }
    return Anatomy(
        semi_mm=(
            rng.uniform(63.0, 70.0),
            rng.uniform(81.0, 90.0),
            rng.uniform(60.0, 67.0),
            rng.uniform(68.0, 75.0),
        ),
        skull_mm=rng.uniform(5.5, 8.0),
        inner_table_mm=rng.uniform(1.3, 2.0),
        outer_table_mm=rng.uniform(1.5, 2.3),
        scalp_fat_mm=rng.uniform(1.0, 4.0),
        temporalis_mm=rng.uniform(6.0, 12.0),
        csf_mm=0.8 + 3.0 * atrophy,
        atrophy=atrophy,
        ventricle_scale=float(np.clip(0.8 + 0.7 * atrophy + rng.normal(0.0, 0.05), 0.75, 1.6)),
        sulcus_half_mm=0.45 + 1.1 * atrophy,
        interhemispheric_half_mm=0.8 + 1.8 * atrophy,
        frontal_sinus_mm=0.0 if rng.random() < 0.1 else rng.uniform(10.0, 24.0),
        hu=hu,
        sulci=WaveField(rng, 14, (16.0, 28.0)),
        sulcal_depth=WaveField(rng, 4, (40.0, 80.0)),
        folia=WaveField(rng, 6, (18.0, 30.0)),
        air_cells=WaveField(rng, 9, (6.0, 10.0)),
        floor_relief=WaveField(rng, 5, (15.0, 30.0)),
    )


class Tissue:
    """Rendered HU plus the anatomical fields of each point (arrays of the points' shape).

    Attributes
    ----------
    hu : float32 Hounsfield units.
    cavity : inside the cranial cavity (brain, CSF spaces, intracranial vessels).
    bone : skull vault or skull-base bone.
    d_cav : radial distance in mm to the inner table; negative inside the cavity.
    depth_mm : depth below the brain surface (negative in the extra-axial CSF layer).
    csf_kind, ventricle_id, region : uint8 codes (module constants).
    xs : x in the midline-shifted frame of the deep structures.
    sulcus_mm : distance in mm outside the nearest cortical sulcus (negative inside it).
    floor_mm, floor_thickness_mm : depth below the skull-base floor (> 0 below it) and the
        thickness of the bone under the floor.
    surface : (3,) arrays, the point projected radially onto the inner table.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.hu = np.full(shape, HU_AIR, np.float32)
        self.cavity = np.zeros(shape, bool)
        self.bone = np.zeros(shape, bool)
        self.csf_kind = np.zeros(shape, np.uint8)
        self.ventricle_id = np.zeros(shape, np.uint8)
        self.region = np.zeros(shape, np.uint8)
        self.d_cav = np.zeros(shape, np.float32)
        self.depth_mm = np.zeros(shape, np.float32)
        self.xs = np.zeros(shape, np.float32)
        self.sulcus_mm = np.full(shape, 1e3, np.float32)
        self.floor_mm = np.full(shape, -1e3, np.float32)
        self.floor_thickness_mm = np.zeros(shape, np.float32)
        self.surface: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


VAULT_EXPONENT = 2.5  # above the equator the vault is a superellipsoid: steep sides, flatter top


def cavity_gauge(pts: Points, anatomy: Anatomy) -> np.ndarray:
    """The cavity's gauge: 1 on the inner table, ``t`` at ``t`` times a surface point.

    An egg-shaped ellipsoid below the equator (wider at the back) and a superellipsoid
    (exponent :data:`VAULT_EXPONENT` between the axial and vertical parts) above it.
    """
    ax, ay, az_up, az_down = anatomy.semi_mm
    widen = F32(1.0) + F32(0.05) * np.clip(pts.y / F32(ay), -1.0, 1.0)
    axial = (pts.x / (F32(ax) * widen)) ** 2 + (pts.y / F32(ay)) ** 2
    gauge = np.sqrt(axial + (pts.z / F32(az_down)) ** 2)
    upper = pts.z > 0
    if upper.any():
        half, p = F32(VAULT_EXPONENT / 2.0), F32(VAULT_EXPONENT)
        lateral = np.maximum(axial[upper], F32(1e-12)) ** half
        gauge[upper] = (lateral + (pts.z[upper] / F32(az_up)) ** p) ** F32(1.0 / VAULT_EXPONENT)
    return gauge


def cavity_q(pts: Points, anatomy: Anatomy) -> np.ndarray:
    """Squared gauge (< 1 inside the cavity)."""
    return cavity_gauge(pts, anatomy) ** 2


def cavity_distance(pts: Points, anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Radial distance to the cavity surface (mm, negative inside) and the gauge."""
    gauge = np.maximum(cavity_gauge(pts, anatomy), F32(1e-3))
    radius = np.sqrt(pts.x**2 + pts.y**2 + pts.z**2)
    return radius * (F32(1.0) - F32(1.0) / gauge), gauge
