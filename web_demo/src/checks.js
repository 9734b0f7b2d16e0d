// When the page must not judge a series (UNREADABLE) or must not call it negative
// (INCOMPLETE): the rules of manifest.input_checks (ich_edge/assets/manifest.py input_checks(),
// built from the constants ich-edge predict applies), every number read from the manifest.
//
//   orientation   slices whose image axes are off the series' are skipped (a problem line);
//   series        localizer, several Patient IDs, a contrast agent named, not axial,
//                 mirrored/rotated axes, thin slices, a field of view that is not a head's
//                 -> UNREADABLE;
//   pixel_module  Rescale Slope/Intercept missing or not one finite number, slope <= 0, padding
//                 that reaches soft tissue, pixel data longer than declared -> UNREADABLE;
//   hu            HU counts summed over the series (in the worker, on the HU before the resize)
//                 that are not a head's -> UNREADABLE;
//   coverage      too few slices, too short, a gap, slices too far apart, no positions -> a
//                 negative is INCOMPLETE.
// A manifest without input_checks (assets made before the rules existed) judges nothing:
// missingChecksReason() is the reason every series is UNREADABLE then.
//
// DOM-free: used by src/prepare.js (in the worker), src/app.js and the unit tests.

import { commonOrientation, sliceNormal } from './dicom.js';

/** Why nothing is judged when the manifest has no input_checks. */
export function missingChecksReason() {
  return 'these app assets (manifest.json) have no input_checks, or older ones: they were made before the page could tell a ' +
    'series the model cannot understand (mirrored axes, a localizer, scrambled pixels, a missing Rescale ' +
    'Intercept, a partial scan) from one it can, so no series is judged; regenerate the assets with ' +
    '`ich-edge assets` (make release-assets) and reload';
}

/** The input checks of a manifest, or null when it has none. */
export function inputChecksOf(manifest) {
  const checks = manifest && manifest.input_checks;
  const complete = checks && checks.hu && checks.series && checks.coverage && checks.pixel_module && checks.orientation &&
    checks.series.min_slice_mm !== undefined && checks.series.field_of_view_mm_range !== undefined &&
    checks.series.drop_contrast !== undefined && checks.series.no_contrast_words !== undefined &&
    checks.series.contrast_instead !== undefined && checks.coverage.max_slice_spacing_mm !== undefined;
  return complete ? checks : null;
}

/** ``"3 slices (a.dcm, b.dcm, ...): reason"``, as ich_edge.dicom.series._slices_text. */
function slicesText(names, reason) {
  const shown = names.slice(0, 2).join(', ') + (names.length > 2 ? ', ...' : '');
  return `${names.length} slice${names.length !== 1 ? 's' : ''} (${shown}): ${reason}`;
}

const degrees = (radians) => (radians * 180) / Math.PI;

/** The larger angle (degrees) between the row directions and between the column directions of
 *  two orientations (six direction cosines each), as ich_edge.dicom.series.axes_angle_deg. */
export function axesAngleDeg(a, b) {
  let largest = 0;
  for (const k of [0, 3]) {
    const u = a.slice(k, k + 3);
    const v = b.slice(k, k + 3);
    const norms = Math.hypot(...u) * Math.hypot(...v);
    const cos = norms > 0 ? (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / norms : -1;
    largest = Math.max(largest, degrees(Math.acos(Math.max(-1, Math.min(1, cos)))));
  }
  return largest;
}

/**
 * The slices whose image axes lie within orientation.max_orientation_diff_deg of the series'
 * (most common) orientation, and those without one; the others are skipped with a problem.
 * @returns {{kept: object[], problems: string[]}}
 */
export function keepSeriesOrientation(slices, checks) {
  const common = commonOrientation(slices);
  if (!common) return { kept: slices, problems: [] };
  const limit = checks.orientation.max_orientation_diff_deg;
  const kept = [];
  const problems = [];
  for (const s of slices) {
    const turn = s.orientation ? axesAngleDeg(s.orientation, common) : null;
    if (turn !== null && turn > limit) {
      problems.push(`${s.name}: image axes ${turn.toFixed(0)} deg from the series' (0020,0037) Image Orientation (Patient); slice skipped`);
    } else {
      kept.push(s);
    }
  }
  return { kept, problems };
}

/** The most common value of key(slice) over the slices (the first met on a tie). */
function mostCommon(slices, key) {
  const counts = new Map();
  for (const s of slices) {
    const k = key(s);
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  let best = null;
  let bestCount = 0;
  for (const [k, n] of counts) if (n > bestCount) [best, bestCount] = [k, n];
  return best;
}

/**
 * Series rule (2b): whether a (0018,0010) Contrast/Bolus Agent value names an agent: upper case,
 * every character other than A-Z and 0-9 removed, it is not one of series.no_contrast_words
 * ("No contrast" and "N/A" name none; missing: false), as ich_edge names_contrast_agent.
 */
export function namesContrastAgent(value, rule) {
  if (value === null || value === undefined) return false;
  return !rule.no_contrast_words.includes(String(value).toUpperCase().replace(/[^A-Z0-9]/g, ''));
}

/** Why the series (its kept, sorted slices) must not be judged (input_checks.series), or null. */
export function seriesProblem(slices, checks) {
  const rule = checks.series;
  const imageType = mostCommon(slices, (s) => (s.imageType ? s.imageType.join('\\') : ''));
  if (rule.drop_localizers && imageType && imageType.split('\\').includes('LOCALIZER')) {
    return `localizer ((0008,0008) Image Type ${imageType})`;
  }
  const patients = new Set(slices.map((s) => s.patientId).filter(Boolean));
  if (patients.size > 1) {
    return `its slices carry ${patients.size} different (0010,0020) Patient IDs: images of several patients in one series`;
  }
  const enhanced = rule.drop_contrast ? slices.filter((s) => namesContrastAgent(s.contrastAgent, rule)).length : 0;
  if (enhanced) {
    return `contrast-enhanced: (0018,0010) Contrast/Bolus Agent names an agent on ${enhanced} of ${slices.length} slices; ` +
      `contrast is as bright as fresh blood and the model was trained on non-contrast head CT; ${rule.contrast_instead}`;
  }
  const normal = sliceNormal(slices, []);
  const tilt = degrees(Math.acos(Math.min(1, Math.abs(normal[2]))));
  if (tilt > rule.max_tilt_deg) {
    return `not axial: slice normal ${tilt.toFixed(0)} deg from the head axis (more than ${rule.max_tilt_deg}); a reformat?`;
  }
  const common = commonOrientation(slices);
  if (common && axesAngleDeg(common, rule.axial_orientation) > rule.max_axis_turn_deg) {
    return `image axes mirrored or rotated: (0020,0037) Image Orientation (Patient) ${common.join('\\')}, where the model ` +
      "was trained on rows running to the patient's left and columns to the back " +
      `(${rule.axial_orientation.join('\\')}); export the series in the standard axial orientation`;
  }
  return acquisitionProblem(slices, rule);
}

/** Median step (mm) between the sorted heights of slices that all have positions (two or more), else null. */
export function sliceSpacingMm(slices) {
  if (slices.length < 2 || !slices.every((s) => s.position)) return null;
  const heights = sortedHeights(slices);
  return median(heights.slice(1).map((h, i) => h - heights[i]).sort((a, b) => a - b));
}

/** Heights (mm) of slices that all have positions along the series' slice normal, ascending. */
function sortedHeights(slices) {
  const normal = sliceNormal(slices, []);
  const heights = slices.map((s) => s.position[0] * normal[0] + s.position[1] * normal[1] + s.position[2] * normal[2]);
  return heights.sort((a, b) => a - b);
}

/** Series rules (5)-(7): thin slices or a field of view that is not a head reconstruction's, or null. */
function acquisitionProblem(slices, rule) {
  const low = rule.min_slice_mm;
  const spacing = sliceSpacingMm(slices);
  if (spacing !== null && spacing < low) {
    return `thin slices: ${spacing.toFixed(2)} mm apart ((0020,0032) Image Position), under the ${low} mm the model ` +
      `reads; ${rule.send_instead}`;
  }
  const thin = slices.find((s) => s.sliceThickness !== null && s.sliceThickness !== undefined && s.sliceThickness < low);
  if (thin) {
    return `thin slices: (0018,0050) Slice Thickness ${thin.sliceThickness} mm, under the ${low} mm the model reads; ` +
      rule.send_instead;
  }
  const [fovLow, fovHigh] = rule.field_of_view_mm_range;
  for (const s of slices) {
    if (!s.pixelSpacing) continue;
    const width = s.module.columns * s.pixelSpacing[1];
    const height = s.module.rows * s.pixelSpacing[0];
    if (!(width >= fovLow && width <= fovHigh && height >= fovLow && height <= fovHigh)) {
      return `field of view ${width.toFixed(0)} x ${height.toFixed(0)} mm (Columns and Rows times (0028,0030) Pixel ` +
        `Spacing), outside the ${fovLow}-${fovHigh} mm of a head reconstruction: the head would be shown at another ` +
        `scale than the model was trained on; ${rule.send_instead}`;
    }
  }
  return null;
}

/** Why one slice's pixel module gives unknown HU (input_checks.pixel_module), or null. */
export function pixelModuleProblem(module, checks) {
  if (module.rescaleProblem) return module.rescaleProblem;
  if (!(module.slope > 0)) {
    return `(0028,1053) Rescale Slope is ${module.slope}; it must be > 0 (0 gives every pixel one HU, ` +
      'a negative slope turns bone into air): fix the export that wrote it';
  }
  if (module.paddingRange) {
    const [lowHu, highHu] = module.paddingRange.map((v) => v * module.slope + module.intercept);
    const [tissueLow, tissueHigh] = checks.pixel_module.padding_forbidden_range_hu;
    if (lowHu <= tissueHigh && highHu >= tissueLow) {
      const shown = lowHu === highHu ? `${lowHu}` : `${lowHu}..${highHu}`;
      return `(0028,0120) Pixel Padding Value (and (0028,0121) Range Limit) mark ${shown} HU as padding, inside ` +
        `the soft-tissue window ${tissueLow}..${tissueHigh} HU: brain, CSF and blood would become air; fix the export that wrote them`;
    }
  }
  const need = module.rows * module.columns * (module.bitsAllocated / 8);
  if (module.pixelDataBytes !== null && module.pixelDataBytes > need + 1) {
    return `(7FE0,0010) Pixel Data holds ${module.pixelDataBytes} bytes where Rows x Columns x Bits Allocated / 8 ` +
      `= ${module.rows} x ${module.columns} x ${module.bitsAllocated / 8} = ${need}: (0028,0100) Bits Allocated or the ` +
      'matrix is mis-declared; fix the export that wrote it';
  }
  return null;
}

/**
 * Why the series must not be judged, before any pixel is decoded: the series rules, else the
 * pixel-module refusals of its slices (grouped by reason). Empty when it may be judged.
 * @param {object|null} checks manifest.input_checks (null: nothing is judged)
 */
export function unreadableReasons(slices, checks) {
  if (!checks) return [missingChecksReason()];
  const series = seriesProblem(slices, checks);
  if (series) return [`${series} (prepare and predict leave such series out)`];
  const byReason = new Map();
  for (const s of slices) {
    const reason = pixelModuleProblem(s.module, checks);
    if (reason === null) continue;
    if (!byReason.has(reason)) byReason.set(reason, []);
    byReason.get(reason).push(s.name);
  }
  return [...byReason].map(([reason, names]) => slicesText(names, reason));
}

// --- HU plausibility (ich_edge/dicom/plausibility.py) -------------------------------------------

/** Names of the values of huCounts, as ich_edge.dicom.plausibility.COUNT_NAMES (manifest hu.count_names). */
const PAIR_SUMS = ['pairs', 'sum_a', 'sum_b', 'sum_aa', 'sum_bb', 'sum_ab'];
export const COUNT_NAMES = ['pixels', 'air', 'tissue', 'above_bone', ...PAIR_SUMS.map((n) => `h_${n}`), ...PAIR_SUMS.map((n) => `v_${n}`)];

/** Adds the pair (a, b) to the six sums at `into[at..at+5]` when both lie above air. */
function addPair(into, at, a, b, air) {
  if (a > air && b > air) {
    into[at] += 1;
    into[at + 1] += a;
    into[at + 2] += b;
    into[at + 3] += a * a;
    into[at + 4] += b * b;
    into[at + 5] += a * b;
  }
}

/**
 * Pixel counts and neighbour sums of one HU slice (rows x columns float32, after padding and
 * sub-air values became air, before the resize), to add over a series (float64): across
 * (h_: a pixel and its right-hand neighbour) and down (v_: a pixel and the one below), in the
 * rows 0, neighbour_row_step, 2 * neighbour_row_step, ...
 * @param {object} rule manifest.input_checks.hu
 * @param {Float64Array} [into] counts to add to (returned)
 */
export function huCounts(hu, rows, columns, rule, into = new Float64Array(COUNT_NAMES.length)) {
  const air = rule.air_max_hu;
  const [low, high] = rule.tissue_range_hu;
  const bone = rule.bone_max_hu;
  let nAir = 0;
  let nTissue = 0;
  let nBone = 0;
  for (let i = 0; i < hu.length; i++) {
    const v = hu[i];
    if (v <= air) nAir++;
    if (v >= low && v <= high) nTissue++;
    if (v > bone) nBone++;
  }
  into[0] += hu.length;
  into[1] += nAir;
  into[2] += nTissue;
  into[3] += nBone;
  for (let r = 0; r < rows; r += rule.neighbour_row_step) {
    const start = r * columns;
    for (let i = start; i < start + columns - 1; i++) addPair(into, 4, hu[i], hu[i + 1], air);
    if (r + 1 < rows) for (let i = start; i < start + columns; i++) addPair(into, 10, hu[i], hu[i + columns], air);
  }
  return into;
}

/** Correlation of one direction's six sums; null under min_neighbour_pairs pairs or without spread. */
function pairCorrelation(sums, rule) {
  const [pairs, sumA, sumB, sumAA, sumBB, sumAB] = sums;
  if (pairs < rule.min_neighbour_pairs) return null;
  const meanA = sumA / pairs;
  const meanB = sumB / pairs;
  const varA = sumAA / pairs - meanA ** 2;
  const varB = sumBB / pairs - meanB ** 2;
  if (varA <= 0 || varB <= 0) return null;
  return (sumAB / pairs - meanA * meanB) / Math.sqrt(varA * varB);
}

/** The lower of the across and down correlations of neighbouring body pixels in (summed)
 *  counts; null when neither direction can be judged. */
export function neighbourCorrelation(counts, rule) {
  const found = [pairCorrelation(counts.slice(4, 10), rule), pairCorrelation(counts.slice(10, 16), rule)]
    .filter((c) => c !== null);
  return found.length ? Math.min(...found) : null;
}

/** Why one slice is refused whose neighbouring pixels do not correlate (one text for every such
 *  slice, as ich_edge.dicom.plausibility.NO_STRUCTURE). */
export function noStructureText(rule) {
  return `no image structure: neighbouring pixels inside the body correlate under ${rule.min_neighbour_correlation} ` +
    "(a head's bone and brain lie in connected regions); the pixels are scrambled or decoded wrongly: check " +
    '(0028,0010) Rows, (0028,0011) Columns and the transfer syntax of the export';
}

/** noStructureText() when one slice's counts correlate under the bound, else null. */
export function sliceStructureProblem(counts, rule) {
  const correlation = neighbourCorrelation(counts, rule);
  return correlation !== null && correlation < rule.min_neighbour_correlation ? noStructureText(rule) : null;
}

/** The reason of the slices refused by sliceStructureProblem(), grouped as Python groups them. */
export function noStructureReason(names, rule) {
  return slicesText(names, noStructureText(rule));
}

const pct = (x, digits) => `${(100 * x).toFixed(digits)}%`;

/** Why HU counts summed over a series are not a head (input_checks.hu), or null. */
export function huProblem(counts, rule) {
  const [pixels, air, tissue, aboveBone] = counts;
  if (pixels === 0) return null;
  const [low, high] = rule.tissue_range_hu;
  const shares = `air ${pct(air / pixels, 1)}, soft tissue ${pct(tissue / pixels, 1)}, above ${rule.bone_max_hu} HU ${pct(aboveBone / pixels, 1)}`;
  const fix = 'check (0028,1052) Rescale Intercept, (0028,1053) Rescale Slope and (0028,0103) Pixel Representation of the export';
  if (aboveBone / pixels > rule.max_above_bone_share) {
    return `implausible HU: ${shares} of the pixels (at most ${pct(rule.max_above_bone_share, 0)} above ${rule.bone_max_hu} HU expected); ${fix}`;
  }
  if (air / pixels < rule.min_air_share) {
    return `implausible HU: ${shares} of the pixels (at least ${pct(rule.min_air_share, 0)} air at or below ${rule.air_max_hu} HU expected); ${fix}`;
  }
  if (tissue / pixels < rule.min_tissue_share) {
    return `implausible HU: ${shares} of the pixels (at least ${pct(rule.min_tissue_share, 0)} soft tissue in ${low}..${high} HU expected); ${fix}`;
  }
  const body = pixels - air;
  if (body && tissue / body < rule.min_tissue_share_of_body) {
    return `implausible HU: ${shares} of the pixels; soft tissue (${low}..${high} HU) is ${pct(tissue / body, 1)} of the ` +
      `pixels above air (at least ${pct(rule.min_tissue_share_of_body, 0)} expected: a head is mostly brain); ${fix}`;
  }
  const correlation = neighbourCorrelation(counts, rule);
  if (correlation !== null && correlation < rule.min_neighbour_correlation) {
    const under = `under ${rule.min_neighbour_correlation}`;
    return noStructureText(rule).replace(under, `${correlation.toFixed(2)}, ${under}`);
  }
  return null;
}

// --- coverage (ich_edge/runtime/completeness.py) -------------------------------------------------

function median(sorted) {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Python's round(): half to even. */
function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * What the slices the model saw cover, and why a negative would be unreliable
 * (input_checks.coverage): {complete, reasons, numSlices, windowSlices, extentMm, spacingMm,
 * largestGapMm, minExtentMm}.
 */
export function seriesCoverage(slices, windowSlices, checks) {
  const rule = checks.coverage;
  const reasons = [];
  const n = slices.length;
  if (n < windowSlices) reasons.push(`${n} slice${n !== 1 ? 's' : ''}, fewer than one window of the model (${windowSlices})`);
  let extent = null;
  let spacing = null;
  let largest = null;
  if (n && slices.every((s) => s.position)) {
    const heights = sortedHeights(slices);
    if (n >= 2) {
      const steps = heights.slice(1).map((h, i) => h - heights[i]);
      spacing = median([...steps].sort((a, b) => a - b));
      largest = Math.max(...steps);
      extent = heights[n - 1] - heights[0] + spacing;
      if (largest > rule.gap_factor * spacing) {
        const at = steps.indexOf(largest);
        const missing = Math.max(1, roundHalfEven(largest / spacing) - 1);
        reasons.push(`a ${largest.toFixed(1)} mm gap between slices ${at + 1} and ${at + 2} (median spacing ${spacing.toFixed(1)} mm): ` +
          `about ${missing} slice${missing !== 1 ? 's' : ''} missing`);
      }
      if (spacing > rule.max_slice_spacing_mm) {
        reasons.push(`slices ${spacing.toFixed(1)} mm apart, more than ${rule.max_slice_spacing_mm.toFixed(0)} mm: the head between them was not seen`);
      }
    } else {
      extent = slices[0].sliceThickness || 0;
    }
    if (extent < rule.min_head_extent_mm) {
      reasons.push(`covers ${extent.toFixed(0)} mm along the slice axis, under the ${rule.min_head_extent_mm} mm a negative ` +
        'needs (a head is about 140-160 mm): only part of the head was seen');
    }
  } else if (n) {
    reasons.push('slice positions (0020,0032) missing: how much of the head the series covers is unknown');
  }
  return {
    complete: reasons.length === 0, reasons, numSlices: n, windowSlices,
    extentMm: extent, spacingMm: spacing, largestGapMm: largest, minExtentMm: rule.min_head_extent_mm,
  };
}

/** POSITIVE when any label is positive; else NEGATIVE only with complete coverage, INCOMPLETE otherwise. */
export function verdictOf(positive, coverage) {
  if (positive.some(Boolean)) return 'POSITIVE';
  return coverage.complete ? 'NEGATIVE' : 'INCOMPLETE';
}
