"""Shape primitives evaluated on :class:`~ich_edge.synth.pose.Points` (head frame, mm).

Every function is elementwise over the points' arrays, so the same code renders a whole
slice, a cropped region of it, or a scattered subset of pixels (partial-volume sampling).
"""

from __future__ import annotations

import numpy as np

from ich_edge.synth.pose import Points

F32 = np.float32


def ellipsoid_q(pts: Points, center, semi_mm, yaw_deg: float = 0.0) -> np.ndarray:
    """Squared normalized radius ``sum(((p - c) / semi)**2)``: < 1 inside the ellipsoid.

    ``yaw_deg`` turns the ellipsoid about the head's z axis.
    """
    dx = pts.x - F32(center[0])
    dy = pts.y - F32(center[1])
    dz = pts.z - F32(center[2])
    if yaw_deg:
        c, s = F32(np.cos(np.deg2rad(yaw_deg))), F32(np.sin(np.deg2rad(yaw_deg)))
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    return (dx / F32(semi_mm[0])) ** 2 + (dy / F32(semi_mm[1])) ** 2 + (dz / F32(semi_mm[2])) ** 2


def ramp(x: np.ndarray) -> np.ndarray:
    """A cheap sigmoid: 0 below -2, 1 above +2, smooth (cubic) in between."""
    t = np.clip(x * F32(0.25) + F32(0.5), 0.0, 1.0)
    return t * t * (F32(3.0) - F32(2.0) * t)


class WaveField:
    """A smooth random field: a sum of plane waves with random directions and phases.

    Scaled so that its gradient has unit root-mean-square magnitude, which makes ``|field|``
    near its zero set approximately the distance in mm to that set: ``|field| < w`` is a
    wall about ``2 w`` mm thick. Used for sulci, cerebellar folia and lesion texture.

    Parameters
    ----------
    rng : numpy Generator used once, at construction.
    n_waves : number of plane waves.
    wavelength_mm : (low, high) range the wavelengths are drawn from.
    """

    def __init__(self, rng: np.random.Generator, n_waves: int, wavelength_mm: tuple[float, float]) -> None:
        directions = rng.normal(size=(n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(*wavelength_mm, size=n_waves)
        amplitudes = rng.uniform(0.5, 1.0, size=n_waves)
        wavenumbers = 2.0 * np.pi / wavelengths
        grad_rms = np.sqrt(np.sum((amplitudes * wavenumbers) ** 2) / 2.0)
        self.k = (directions * wavenumbers[:, None]).astype(np.float32)
        self.phase = rng.uniform(0.0, 2.0 * np.pi, size=n_waves).astype(np.float32)
        self.amplitude = (amplitudes / grad_rms).astype(np.float32)
        value_rms = np.sqrt(np.sum(amplitudes**2) / 2.0) / grad_rms
        self.value_rms = float(value_rms)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        total = np.zeros(np.shape(x), np.float32)
        for (kx, ky, kz), phase, amp in zip(self.k, self.phase, self.amplitude):
            total += amp * np.cos(kx * x + ky * y + kz * z + phase)
        return total

    def unit(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The field divided by its root-mean-square value (roughly standard normal)."""
        return self(x, y, z) * F32(1.0 / self.value_rms)
