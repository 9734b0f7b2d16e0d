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

/** (nOut x nIn) area weights as float32: overlap of [i*s, (i+1)*s) with [k, k+1), / s. */
function areaWeights(nIn, nOut) {
  const scale = nIn / nOut;
  const weights = [];
  for (let i = 0; i < nOut; i++) {
    const start = i * scale;
    const stop = (i + 1) * scale;
    const row = [];
    for (let k = Math.floor(start); k < Math.ceil(stop); k++) {
      const overlap = Math.min(stop, k + 1) - Math.max(start, k);
      if (overlap > 0) row.push([k, Math.fround(overlap / scale)]);
    }
    weights.push(row);
  }
  return weights;
}

/**
 * Area resize of a float32 HU image (rows x columns, row by row) to size x size.
 * Integer factors: the block mean, summed as ich_edge does (rows of a block first, in order,
 * then its columns, then one float32 division). Other factors: separable overlap weights
 * (rows first, then columns), accumulated in float32 in index order; numpy does that part
 * with BLAS, whose summation order is not fixed, so there a pixel may differ by a rounding.
 */
export function areaResize(hu, rows, columns, size) {
  if (rows === size && columns === size) return hu;
  if (rows % size === 0 && columns % size === 0) {
    const fr = rows / size;
    const fc = columns / size;
    const summed = new Float32Array(size * columns);
    for (let i = 0; i < size; i++) {
      for (let c = 0; c < columns; c++) summed[i * columns + c] = hu[i * fr * columns + c];
      for (let offset = 1; offset < fr; offset++) {
        const src = (i * fr + offset) * columns;
        for (let c = 0; c < columns; c++) summed[i * columns + c] = Math.fround(summed[i * columns + c] + hu[src + c]);
      }
    }
    const out = new Float32Array(size * size);
    const divisor = Math.fround(fr * fc);
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) {
        const base = i * columns + j * fc;
        let acc = summed[base];
        for (let offset = 1; offset < fc; offset++) acc = Math.fround(acc + summed[base + offset]);
        out[i * size + j] = Math.fround(acc / divisor);
      }
    }
    return out;
  }
  const wr = areaWeights(rows, size);
  const wc = areaWeights(columns, size);
  const rowsDone = new Float32Array(size * columns);
  for (let i = 0; i < size; i++) {
    for (let c = 0; c < columns; c++) {
      let acc = 0;
      for (const [r, w] of wr[i]) acc = Math.fround(acc + Math.fround(w * hu[r * columns + c]));
      rowsDone[i * columns + c] = acc;
    }
  }
  const out = new Float32Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      let acc = 0;
      for (const [c, w] of wc[j]) acc = Math.fround(acc + Math.fround(w * rowsDone[i * columns + c]));
      out[i * size + j] = acc;
    }
  }
  return out;
}

/**
 * Resized HU (size x size) -> uint8 (size x size x channels), NHWC without N:
 * u = clip((hu - low_hu) * scale_per_hu, 0, 1), pixel = round_half_even(u * 255), float32.
 *
 * @param {Float32Array} small resized HU
 * @param {{channel: number, low_hu: number, scale_per_hu: number}[]} windows manifest windows
 */
export function windowsToUint8(small, windows) {
  const ordered = [...windows].sort((a, b) => a.channel - b.channel);
  const channels = ordered.length;
  const out = new Uint8Array(small.length * channels);
  const f255 = Math.fround(255);
  ordered.forEach((window, ch) => {
    const low = Math.fround(window.low_hu);
    const scale = Math.fround(window.scale_per_hu);
    for (let p = 0; p < small.length; p++) {
      let u = Math.fround(Math.fround(small[p] - low) * scale);
      if (u < 0) u = 0;
      else if (u > 1) u = 1;
      out[p * channels + ch] = roundHalfEven(Math.fround(u * f255));
    }
  });
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
