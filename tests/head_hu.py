"""Random HU images that pass the reader's head check (:mod:`ich_edge.dicom.plausibility`).

Uniform noise from air to bone is no head: soft tissue is a tenth of its non-air pixels, where
a head is mostly brain, so ``Series.load`` calls it UNREADABLE. Test series that only need
"some image" draw each pixel from a head's mix instead: air, soft tissue, bone.
"""

from __future__ import annotations

import numpy as np

#: Shares of air (-1000 HU), soft tissue (-100..100 HU) and bone (300..2199 HU).
MIX = (0.4, 0.45, 0.15)


def random_head_hu(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Integer HU (float32), each pixel air, soft tissue or bone at random (:data:`MIX`)."""
    kind = rng.choice(3, size=shape, p=MIX)
    values = np.stack([np.full(shape, -1000), rng.integers(-100, 101, shape), rng.integers(300, 2200, shape)])
    return np.choose(kind, values).astype(np.float32)
