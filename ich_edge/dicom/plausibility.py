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
* **an image, not a histogram**: neighbouring pixels inside the body (both above air) must
  correlate by at least :data:`MIN_NEIGHBOUR_CORRELATION`, across (a pixel and its right-hand
  neighbour) and down (a pixel and the one below), in every slice and over the series
  (:func:`slice_structure_problem`, judged where a direction has :data:`MIN_NEIGHBOUR_PAIRS`
  pairs). Bone, brain and scalp lie in connected regions, so a neighbour holds nearly a
  pixel's value: 0.91-0.95 over the demo's 400 synthetic 512-pixel series (300 training, 100
  test), 0.85-0.88 at 256 pixels, 0.68-0.77 at 128 and still 0.46-0.59 at 64 pixels (3.6 mm
  per pixel, where the skull is a pixel thick); an attack's noisiest realistic head (a child's
  head in a wide field of view, noise of 300 HU in the body) had 0.52 in its worst slice.
  Pixels in a scrambled order, rows shuffled or shifted, two images interleaved row by row,
  or garbage that happens to have a head's histogram pass every share above and correlate
  near 0 in one direction at least (0.02 for whole slices shuffled; -0.3 to 0.1 for the
  others). A series with half its slices scrambled pools to 0.5, hence the per-slice rule.
  Counting every :data:`NEIGHBOUR_ROW_STEP`-th row is plenty for a correlation.

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
#: Smallest correlation of neighbouring pixels inside the body (both above air), across and down.
MIN_NEIGHBOUR_CORRELATION = 0.25
#: Fewest neighbouring pairs inside the body, per direction, for a correlation to be judged.
MIN_NEIGHBOUR_PAIRS = 1000
#: Pairs counted for the correlation: in rows 0, 4, 8, ... (across: pixel and its right-hand
#: neighbour; down: pixel and the one below it).
NEIGHBOUR_ROW_STEP = 4

#: The six sums over body pixel pairs (a, b) that give their correlation, per direction.
PAIR_SUMS = ("pairs", "sum_a", "sum_b", "sum_aa", "sum_bb", "sum_ab")
#: Columns of :func:`hu_counts`: pixel counts, then :data:`PAIR_SUMS` across (``h_``) and down (``v_``).
COUNT_NAMES = ("pixels", "air", "tissue", "above_bone", *(f"h_{n}" for n in PAIR_SUMS), *(f"v_{n}" for n in PAIR_SUMS))
#: Why a slice is refused whose neighbouring pixels do not correlate (one text for every such slice).
NO_STRUCTURE = (
    f"no image structure: neighbouring pixels inside the body correlate under {MIN_NEIGHBOUR_CORRELATION:g} "
    "(a head's bone and brain lie in connected regions); the pixels are scrambled or decoded wrongly: check "
    "(0028,0010) Rows, (0028,0011) Columns and the transfer syntax of the export"
)


def _pair_sums(first: np.ndarray, second: np.ndarray) -> list[float]:
    """:data:`PAIR_SUMS` over the pairs (first, second) with both above air."""
    body = (first > AIR_MAX_HU) & (second > AIR_MAX_HU)  # compared as stored, then only the pairs widened
    a, b = first[body].astype(np.float64), second[body].astype(np.float64)
    # sums by einsum: a BLAS dot of this size is 100x slower under load
    return [a.size, a.sum(), b.sum(), np.einsum("i,i->", a, a), np.einsum("i,i->", b, b), np.einsum("i,i->", a, b)]


def hu_counts(hu: np.ndarray) -> np.ndarray:
    """Pixel counts and neighbour sums of one HU slice (float64, :data:`COUNT_NAMES`), to add over a series."""
    low, high = TISSUE_RANGE_HU
    step = NEIGHBOUR_ROW_STEP
    return np.array(
        [
            hu.size,
            np.count_nonzero(hu <= AIR_MAX_HU),
            np.count_nonzero((hu >= low) & (hu <= high)),
            np.count_nonzero(hu > BONE_MAX_HU),
            *_pair_sums(hu[::step, :-1], hu[::step, 1:]),
            *_pair_sums(hu[:-1:step, :], hu[1::step, :]),
        ],
        dtype=np.float64,
    )


def _correlation(sums: np.ndarray) -> float | None:
    pairs, sum_a, sum_b, sum_aa, sum_bb, sum_ab = (float(v) for v in sums)
    if pairs < MIN_NEIGHBOUR_PAIRS:
        return None
    mean_a, mean_b = sum_a / pairs, sum_b / pairs
    var_a, var_b = sum_aa / pairs - mean_a**2, sum_bb / pairs - mean_b**2
    if var_a <= 0 or var_b <= 0:
        return None  # one value everywhere: the shares judge it
    return (sum_ab / pairs - mean_a * mean_b) / float(np.sqrt(var_a * var_b))


def neighbour_correlation(counts: np.ndarray) -> float | None:
    """The lower of the across and down correlations of neighbouring body pixels in :func:`hu_counts`.

    A direction with fewer than :data:`MIN_NEIGHBOUR_PAIRS` pairs or no spread is not judged;
    None when neither is. Rows in a scrambled order correlate across but not down.
    """
    found = [c for c in (_correlation(counts[4:10]), _correlation(counts[10:16])) if c is not None]
    return min(found) if found else None


def slice_structure_problem(counts: np.ndarray) -> str | None:
    """:data:`NO_STRUCTURE` when one slice's :func:`hu_counts` correlate under the bound, else None.

    Judged slice by slice as well as over the series: half a series scrambled pools to 0.5.
    """
    correlation = neighbour_correlation(counts)
    return NO_STRUCTURE if correlation is not None and correlation < MIN_NEIGHBOUR_CORRELATION else None


def hu_problem(counts: np.ndarray) -> str | None:
    """Why HU counts summed over a series (:func:`hu_counts`) are not a head, or None."""
    pixels, air, tissue, above_bone = (int(v) for v in counts[:4])
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
    correlation = neighbour_correlation(counts)
    if correlation is not None and correlation < MIN_NEIGHBOUR_CORRELATION:
        return NO_STRUCTURE.replace(f"under {MIN_NEIGHBOUR_CORRELATION:g}", f"{correlation:.2f}, under {MIN_NEIGHBOUR_CORRELATION:g}")
    return None
