// One slice in HU -> the model's uint8 input (size x size x 3), bit-identical to
// ich_edge/transforms.py (Preprocess) and the manifest's preprocessing rules.
//
// numpy computes in float32; JavaScript computes in float64. Every operation here is
// rounded to float32 with Math.fround (or by storing into a Float32Array) right after it
// happens, which gives the float32 result exactly: a float64 +, -, *, / of two float32
// values rounded once to float32 is the correctly rounded float32 result. The order of the
// operations follows ich_edge/transforms.py exactly (it matters for the sums).

/** Round half to even (numpy's rint) of a finite non-negative or negative number. */
export function roundHalfEven(x) {
  const r = Math.round(x); // half up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Area weights for nIn -> nOut as flat arrays: output i takes the inputs index[n] with the
 * float32 weights weight[n], n from offset[i] to offset[i + 1] - 1, in input order; each
 * weight is the overlap of [i*s, (i+1)*s) with [k, k+1), / s (zero overlaps left out).
 * Cached: every slice of a series has the same shape.
 */
const weightCache = new Map();
function areaWeights(nIn, nOut) {
  const key = `${nIn} ${nOut}`;
  if (weightCache.has(key)) return weightCache.get(key);
  const scale = nIn / nOut;
  const offset = new Int32Array(nOut + 1);
  const index = [];
  const weight = [];
  for (let i = 0; i < nOut; i++) {
    const start = i * scale;
    const stop = (i + 1) * scale;
    for (let k = Math.floor(start); k < Math.ceil(stop); k++) {
      const overlap = Math.min(stop, k + 1) - Math.max(start, k);
      if (overlap > 0) {
        index.push(k);
        weight.push(Math.fround(overlap / scale));
      }
    }
    offset[i + 1] = weight.length;
  }
  const result = { offset, index: Int32Array.from(index), weight: Float32Array.from(weight) };
  weightCache.set(key, result);
  return result;
}

/**
 * Area resize of a float32 HU image (rows x columns, row by row) to size x size.
 * Integer factors: the block mean, summed as ich_edge does (rows of a block first, in order,
 * then its columns, then one float32 division). Other factors: separable overlap weights
 * (rows first, then columns), accumulated in float32 in index order; numpy does that part
 * with BLAS, whose summation order is not fixed, so there a pixel may differ by a rounding.
 *
 * Sums are accumulated in Float32Arrays: storing a + b (computed in float64 from two float32
 * values) rounds it to float32 exactly as Math.fround would (see the top of this file).
 */
export function areaResize(hu, rows, columns, size) {
  if (rows === size && columns === size) return hu;
  const out = new Float32Array(size * size);
  if (rows % size === 0 && columns % size === 0) {
    const fr = rows / size;
    const fc = columns / size;
    const divisor = Math.fround(fr * fc);
    // One output row at a time: its block rows summed into `summed` (input row order), then
    // each block's columns summed in order and divided.
    const summed = new Float32Array(columns);
    for (let i = 0; i < size; i++) {
      let src = i * fr * columns;
      summed.set(hu.subarray(src, src + columns));
      for (let offset = 1; offset < fr; offset++) {
        src += columns;
        for (let c = 0; c < columns; c++) summed[c] += hu[src + c];
      }
      const row = i * size;
      for (let j = 0, base = 0; j < size; j++, base += fc) {
        let acc = summed[base];
        for (let offset = 1; offset < fc; offset++) acc = Math.fround(acc + summed[base + offset]);
        out[row + j] = Math.fround(acc / divisor);
      }
    }
    return out;
  }
  const wr = areaWeights(rows, size);
  const wc = areaWeights(columns, size);
  // Rows: rowsDone[i][c] = sum over the weighted input rows r of w * hu[r][c], from 0 in
  // weight order (each product and each sum rounded to float32), one input row at a time.
  const rowsDone = new Float32Array(size * columns);
  for (let i = 0; i < size; i++) {
    const dst = i * columns;
    for (let n = wr.offset[i]; n < wr.offset[i + 1]; n++) {
      const w = wr.weight[n];
      const src = wr.index[n] * columns;
      for (let c = 0; c < columns; c++) rowsDone[dst + c] += Math.fround(w * hu[src + c]);
    }
  }
  // Columns: out[i][j] = sum over the weighted columns c of w * rowsDone[i][c], the same way.
  for (let i = 0; i < size; i++) {
    const src = i * columns;
    for (let j = 0; j < size; j++) {
      let acc = 0;
      for (let n = wc.offset[j]; n < wc.offset[j + 1]; n++) acc = Math.fround(acc + Math.fround(wc.weight[n] * rowsDone[src + wc.index[n]]));
      out[i * size + j] = acc;
    }
  }
  return out;
}

/**
 * One window's float32 u * 255 before the clip: float32((float32(hu - low) * scale) * 255).
 * Stored into a Uint8ClampedArray, it gives round_half_even(clip(u, 0, 1) * 255): see
 * windowsToUint8.
 */
function windowLevel(hu, low, scale) {
  return Math.fround(Math.fround(Math.fround(hu - low) * scale) * 255);
}

/**
 * Resized HU (size x size) -> uint8 (size x size x channels), NHWC without N:
 * u = clip((hu - low_hu) * scale_per_hu, 0, 1), pixel = round_half_even(u * 255), float32.
 *
 * The clip and the rounding are done by storing float32(u' * 255), u' the unclipped u, into
 * a Uint8ClampedArray (a view of the output): ECMAScript's ToUint8Clamp gives 0 at or below 0
 * (and for NaN, as a Uint8Array store of NaN does), 255 at or above 255, and rounds half to
 * even in between. u' < 0 or u' > 1 gives u' * 255 < 0 or > 255 (float32 rounding is
 * monotonic), where clipping u first gives 0 or 255: the bytes are those of clip, then
 * roundHalfEven, with no clip or rounding code here. All channels of a pixel in one pass; three channels (the
 * manifest's) unrolled.
 *
 * A pixel at or below every window's low_hu is 0 in every channel (hu - low_hu <= 0, so
 * u <= 0 when scale_per_hu > 0), which the zeroed output already holds: such pixels (the air
 * around the head, most of a head CT slice) are skipped.
 *
 * @param {Float32Array} small resized HU
 * @param {{channel: number, low_hu: number, scale_per_hu: number}[]} windows manifest windows
 */
export function windowsToUint8(small, windows) {
  const ordered = [...windows].sort((a, b) => a.channel - b.channel);
  const channels = ordered.length;
  const out = new Uint8Array(small.length * channels);
  const clamped = new Uint8ClampedArray(out.buffer);
  const lows = ordered.map((w) => Math.fround(w.low_hu));
  const scales = ordered.map((w) => Math.fround(w.scale_per_hu));
  // hu <= allZeroAt: 0 in every channel. Only when every scale is positive; else NaN, which
  // no value is <= to (with -Infinity, hu = -Infinity would still be skipped).
  const allZeroAt = scales.every((scale) => scale > 0) ? Math.min(...lows) : NaN;
  if (channels === 3) {
    const [l0, l1, l2] = lows;
    const [s0, s1, s2] = scales;
    for (let p = 0, o = 0; p < small.length; p++, o += 3) {
      const hu = small[p];
      if (hu <= allZeroAt) continue;
      clamped[o] = windowLevel(hu, l0, s0);
      clamped[o + 1] = windowLevel(hu, l1, s1);
      clamped[o + 2] = windowLevel(hu, l2, s2);
    }
    return out;
  }
  for (let p = 0; p < small.length; p++) {
    if (small[p] <= allZeroAt) continue;
    for (let ch = 0; ch < channels; ch++) clamped[p * channels + ch] = windowLevel(small[p], lows[ch], scales[ch]);
  }
  return out;
}

/**
 * One slice in float32 HU -> uint8 model input, from manifest.preprocessing.
 * @returns {Uint8Array} input_size_px * input_size_px * 3 values, image[row][column][channel]
 */
export function preprocessSlice(hu, rows, columns, rules) {
  const size = rules.input_size_px;
  return windowsToUint8(areaResize(hu, rows, columns, size), rules.windows);
}

/** uint8 image -> the model's real-valued input: pixel * float32(unit_per_pixel), float32. */
export function toModelInput(image, unitPerPixel) {
  const unit = Math.fround(unitPerPixel);
  const out = new Float32Array(image.length);
  for (let i = 0; i < image.length; i++) out[i] = image[i] * unit; // exact product, one rounding
  return out;
}
