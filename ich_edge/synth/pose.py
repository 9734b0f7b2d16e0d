"""Where the phantom head sits in the scanner, and the sample points of one slice.

Two frames, both in the DICOM patient convention (x to the patient's left, y to the back,
z up):

* the scanner frame, in which (0020,0032) Image Position (Patient) and the pixel grid are
  given; slices are axial planes ``Z = const``;
* the head frame, in which the anatomy is described, in millimetres of a standard adult
  head. The head is rotated (in-plane rotation, roll, and pitch: the gantry tilt or head
  flexion that makes the slice plane cut the head obliquely), scaled and translated.

``scanner = center + scale * R @ head``, a similarity transform, so a sphere in the head
frame stays a sphere and :meth:`SlicePoints.region` can crop the pixels a structure can
reach before evaluating it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def rotation_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Head-to-scanner rotation: pitch about x, then roll about y, then yaw about z."""
    yaw, pitch, roll = np.deg2rad([yaw_deg, pitch_deg, roll_deg])
    cz, sz = np.cos(yaw), np.sin(yaw)
    cx, sx = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(roll), np.sin(roll)
    rot_z = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    rot_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    return rot_z @ rot_y @ rot_x


@dataclass(frozen=True)
class Pose:
    """The head's placement: ``scanner = center_mm + scale * rotation @ head``.

    Attributes
    ----------
    rotation : (3, 3) head-to-scanner rotation matrix.
    center_mm : scanner coordinates of the head frame's origin (centre of the cranial cavity).
    scale : head size factor (scanner mm per head-frame mm), about 0.9 to 1.1.
    """

    rotation: np.ndarray
    center_mm: np.ndarray
    scale: float

    def to_scanner(self, head_mm: np.ndarray) -> np.ndarray:
        """Head-frame points ``(..., 3)`` to scanner coordinates in mm."""
        return self.center_mm + self.scale * np.asarray(head_mm, np.float64) @ self.rotation.T

    def to_head(self, scanner_mm: np.ndarray) -> np.ndarray:
        """Scanner points ``(..., 3)`` to head-frame coordinates."""
        return (np.asarray(scanner_mm, np.float64) - self.center_mm) @ self.rotation / self.scale


class Points:
    """Head-frame coordinates ``x, y, z`` (float32 arrays of one shape) of sample points.

    The base class has no spatial index: :meth:`region` returns ``Ellipsis`` (all points).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
        self.x, self.y, self.z = x, y, z

    @property
    def shape(self) -> tuple[int, ...]:
        return self.x.shape

    def region(self, center, radius_mm: float):
        """Index of the points that may lie within ``radius_mm`` of ``center`` (head frame)."""
        return Ellipsis

    def __getitem__(self, index) -> "Points":
        if index is Ellipsis:
            return self
        return Points(self.x[index], self.y[index], self.z[index])


class SlicePoints(Points):
    """The pixel centres of one axial slice, with a crop for spheres in the head frame."""

    def __init__(self, pose: Pose, origin_xy_mm: tuple[float, float], pixel_mm: float, size_px: int, z_mm: float):
        self.size_px = int(size_px)
        inv = pose.rotation.T / pose.scale
        origin = inv @ (np.array([origin_xy_mm[0], origin_xy_mm[1], z_mm]) - pose.center_mm)
        self._origin = origin
        self._col_step = inv[:, 0] * pixel_mm
        self._row_step = inv[:, 1] * pixel_mm
        self.normal = inv[:, 2] * pose.scale  # unit normal of the slice plane, head frame
        self._step_mm = pixel_mm / pose.scale
        idx = np.arange(self.size_px, dtype=np.float64)
        coords = []
        for axis in range(3):
            cols = (origin[axis] + idx * self._col_step[axis]).astype(np.float32)
            rows = (idx * self._row_step[axis]).astype(np.float32)
            coords.append(rows[:, None] + cols[None, :])
        super().__init__(*coords)

    def region(self, center, radius_mm: float):
        offset = np.asarray(center, np.float64) - self._origin
        dist = float(offset @ self.normal)
        if abs(dist) >= radius_mm:
            return None
        half_px = np.sqrt(radius_mm**2 - dist**2) / self._step_mm
        col = float(offset @ self._col_step) / self._step_mm**2
        row = float(offset @ self._row_step) / self._step_mm**2
        r0, r1 = int(np.floor(row - half_px)), int(np.ceil(row + half_px)) + 1
        c0, c1 = int(np.floor(col - half_px)), int(np.ceil(col + half_px)) + 1
        r0, c0 = max(r0, 0), max(c0, 0)
        r1, c1 = min(r1, self.size_px), min(c1, self.size_px)
        if r0 >= r1 or c0 >= c1:
            return None
        return (slice(r0, r1), slice(c0, c1))

    def offset(self, dz_mm: float, pose: Pose, mask: np.ndarray | None = None) -> Points:
        """The pixels (all, or those in ``mask``, flattened) moved ``dz_mm`` along scanner z."""
        shift = (self.normal * dz_mm / pose.scale).astype(np.float32)
        if mask is None:
            return Points(self.x + shift[0], self.y + shift[1], self.z + shift[2])
        rows = np.nonzero(mask)[0]
        margin = abs(dz_mm) / pose.scale + 0.5
        return BandPoints(self.x[mask] + shift[0], self.y[mask] + shift[1], self.z[mask] + shift[2], rows, self, margin)


class BandPoints(Points):
    """Scattered pixels of a slice, in row-major order, moved off the slice plane by at most
    ``margin_mm``; :meth:`region` returns the contiguous run of points in the rows a sphere
    can reach (a superset of the points inside it)."""

    def __init__(self, x, y, z, rows: np.ndarray, parent: SlicePoints, margin_mm: float) -> None:
        super().__init__(x, y, z)
        self.rows, self.parent, self.margin_mm = rows, parent, margin_mm

    def region(self, center, radius_mm: float):
        box = self.parent.region(center, radius_mm + self.margin_mm)
        if box is None:
            return None
        lo, hi = np.searchsorted(self.rows, [box[0].start, box[0].stop])
        return slice(int(lo), int(hi)) if lo < hi else None
