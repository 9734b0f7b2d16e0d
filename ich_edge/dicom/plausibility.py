"""Whether the HU of a series look like a head: the last check before a verdict.

A mis-declared pixel module that passes every header rule still gives HU that no head holds:
(0028,0103) Pixel Representation 0 on signed data turns air (-1000 HU) into 64536, a wrong
intercept shifts every value. A model shown such images answers anyway, usually "nothing
seen". So every series read by :meth:`ich_edge.dicom.Series.load` (for ``inspect``,
``prepare`` and ``predict`` alike) is counted here, slice by slice, and judged once over all
its slices with :func:`hu_problem`:

* **air**: at least :data:`MIN_AIR_SHARE` of the pixels at or below :data:`AIR_MAX_HU`
  (-900 HU). A head CT field of view always holds air around the head (padding outside
  the field of view is air too).
* **soft tissue**: at least :data:`MIN_TISSUE_SHARE` of the pixels within
  :data:`TISSUE_RANGE_HU` (-100..100 HU: brain, CSF, blood, scalp).
* **soft tissue inside the body**: at least :data:`MIN_TISSUE_SHARE_OF_BODY` of the pixels
  above air within :data:`TISSUE_RANGE_HU`. A head is mostly brain inside a ring of bone
  (about 70 % of the non-air pixels of a synthetic head, 0.03-0.08 with the intercept off by
  500 HU, a slope of 0.5 or random values, which the whole-image shares let through).
* **nothing beyond bone**: at most :data:`MAX_ABOVE_BONE_SHARE` of the pixels above
  :data:`BONE_MAX_HU` (3000 HU; dense cortical bone stays below, dental metal is a few
  pixels).

The shares are loose on purpose: a real head is far inside them (about 30 % air, 40 % soft
tissue, well under 0.1 % above 3000 HU), a mis-declared series far outside.
"""

from __future__ import annotations

import numpy as np

#: HU at or below which a pixel counts as air (air is -1000 HU; padding is set to -1024).
AIR_MAX_HU = -900.0
#: Soft tissue window in HU (fat -100, CSF 0-15, brain 20-45, blood 40-90).
TISSUE_RANGE_HU = (-100.0, 100.0)
#: Above this no head tissue lies (cortical bone about 1000-2000 HU).
BONE_MAX_HU = 3000.0
#: Smallest share of a series' pixels that must be air.
MIN_AIR_SHARE = 0.01
#: Smallest share of a series' pixels that must be soft tissue.
MIN_TISSUE_SHARE = 0.01
#: Smallest share of the pixels above :data:`AIR_MAX_HU` that must be soft tissue.
MIN_TISSUE_SHARE_OF_BODY = 0.25
#: Largest share of a series' pixels allowed above :data:`BONE_MAX_HU`.
MAX_ABOVE_BONE_SHARE = 0.01

#: Columns of :func:`hu_counts`.
COUNT_NAMES = ("pixels", "air", "tissue", "above_bone")


def hu_counts(hu: np.ndarray) -> np.ndarray:
    """Pixel counts of one HU slice: all, air, soft tissue, above bone (int64, :data:`COUNT_NAMES`)."""
    low, high = TISSUE_RANGE_HU
    return np.array(
        [
            hu.size,
            np.count_nonzero(hu <= AIR_MAX_HU),
            np.count_nonzero((hu >= low) & (hu <= high)),
            np.count_nonzero(hu > BONE_MAX_HU),
        ],
        dtype=np.int64,
    )


def hu_problem(counts: np.ndarray) -> str | None:
    """Why HU counts summed over a series (:func:`hu_counts`) are not a head, or None."""
    pixels, air, tissue, above_bone = (int(v) for v in counts)
    if pixels == 0:
        return None
    shares = f"air {air / pixels:.1%}, soft tissue {tissue / pixels:.1%}, above {BONE_MAX_HU:g} HU {above_bone / pixels:.1%}"
    fix = (
        "check (0028,1052) Rescale Intercept, (0028,1053) Rescale Slope and (0028,0103) Pixel "
        "Representation of the export"
    )
    if above_bone / pixels > MAX_ABOVE_BONE_SHARE:
        return f"implausible HU: {shares} of the pixels (at most {MAX_ABOVE_BONE_SHARE:.0%} above {BONE_MAX_HU:g} HU expected); {fix}"
    if air / pixels < MIN_AIR_SHARE:
        return f"implausible HU: {shares} of the pixels (at least {MIN_AIR_SHARE:.0%} air at or below {AIR_MAX_HU:g} HU expected); {fix}"
    if tissue / pixels < MIN_TISSUE_SHARE:
        low, high = TISSUE_RANGE_HU
        return f"implausible HU: {shares} of the pixels (at least {MIN_TISSUE_SHARE:.0%} soft tissue in {low:g}..{high:g} HU expected); {fix}"
    body = pixels - air
    if body and tissue / body < MIN_TISSUE_SHARE_OF_BODY:
        low, high = TISSUE_RANGE_HU
        return (f"implausible HU: {shares} of the pixels; soft tissue ({low:g}..{high:g} HU) is {tissue / body:.1%} of the "
                f"pixels above air (at least {MIN_TISSUE_SHARE_OF_BODY:.0%} expected: a head is mostly brain); {fix}")
    return None
