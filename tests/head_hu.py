"""Random HU images that pass the reader's head check (:mod:`ich_edge.dicom.plausibility`).

Uniform noise from air to bone is no head: soft tissue is a tenth of its non-air pixels, where
a head is mostly brain, and neighbouring pixels do not correlate, where a head's regions are
connected, so ``Series.load`` calls it UNREADABLE. Test series that only need "some image"
draw blocks of :data:`BLOCK_PX` pixels from a head's mix instead (air, soft tissue, bone),
each block one value with a little noise.
"""

from __future__ import annotations

import numpy as np

#: Shares of air (-1000 HU), soft tissue (-100..100 HU) and bone (300..2199 HU).
MIX = (0.4, 0.45, 0.15)
#: Side of the square blocks that share one tissue and value.
BLOCK_PX = 8


def random_head_hu(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Integer HU (float32): blocks of air, soft tissue or bone at random (:data:`MIX`), noise of a few HU."""
    blocks = (-(-shape[0] // BLOCK_PX), -(-shape[1] // BLOCK_PX))
    kind = rng.choice(3, size=blocks, p=MIX)
    values = np.choose(kind, np.stack([np.full(blocks, -1000), rng.integers(-95, 96, blocks), rng.integers(305, 2195, blocks)]))
    image = np.kron(values, np.ones((BLOCK_PX, BLOCK_PX), dtype=np.int64))[: shape[0], : shape[1]]
    noise = np.where(image > -1000, rng.integers(-5, 6, shape), 0)
    return (image + noise).astype(np.float32)
