// Reading a CT series with dicom-parser: headers, stored pixel values, HU, one series, slice order.
//
// The rules are the app contract's (android_demo_assets/manifest.json -> preprocessing), the
// same ones ich_edge/dicom/pixels.py and ich_edge/dicom/series.py apply:
//   * stored values masked to Bits Stored, sign-extended when Pixel Representation is 1;
//   * HU = float32(stored) * float32(slope) + float32(intercept), float32 at every step;
//   * Pixel Padding Value (and its range limit) -> air_hu, then every HU below air_hu -> air_hu;
//   * MONOCHROME1 is not inverted (the rescale already gives HU);
//   * slices sorted by Image Position (Patient) projected on the normal of Image Orientation
//     (Patient) turned towards the head (+z), ascending (skull base first); Instance Number only
//     breaks ties.
// dicom-parser is loaded as a classic script (globalThis.dicomParser).

import { decodeRle16Mapped, decodeRlePlanes, RleError } from './rle.js';

export class DicomError extends Error {}

const TS = {
  IMPLICIT_LE: '1.2.840.10008.1.2',
  EXPLICIT_LE: '1.2.840.10008.1.2.1',
  EXPLICIT_BE: '1.2.840.10008.1.2.2',
  RLE: '1.2.840.10008.1.2.5',
};

/** Transfer syntaxes this page decodes, by UID. */
export const SUPPORTED_TRANSFER_SYNTAXES = {
  [TS.IMPLICIT_LE]: 'Implicit VR Little Endian',
  [TS.EXPLICIT_LE]: 'Explicit VR Little Endian',
  [TS.EXPLICIT_BE]: 'Explicit VR Big Endian',
  [TS.RLE]: 'RLE Lossless',
};

/** Names of common transfer syntaxes this page does not decode, for the error message. */
const OTHER_TRANSFER_SYNTAXES = {
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.202': 'HTJ2K Lossless RPCL',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
};

/** Largest Rows or Columns accepted (as ich-edge: bounds memory on a corrupt header). */
const MAX_MATRIX_PX = 4096;
/** Two slices closer than this along the normal are at the same position (ich-edge's rule). */
const DUPLICATE_TOLERANCE_MM = 0.01;

function parser() {
  const p = globalThis.dicomParser;
  if (!p) throw new DicomError('dicom-parser is not loaded (vendor/dicomParser.min.js missing: run `npm run build` in web_demo/)');
  return p;
}

function text(ds, tag) {
  const value = ds.string(tag);
  return value === undefined || value === '' ? null : value.trim();
}

function numbers(ds, tag) {
  const raw = ds.string(tag);
  if (raw === undefined || raw.trim() === '') return null;
  const values = raw.split('\\').filter((v) => v.trim() !== '').map((v) => Number(v.trim()));
  return values.length && values.every(Number.isFinite) ? values : null;
}

function firstNumber(ds, tag) {
  const values = numbers(ds, tag);
  return values ? values[0] : null;
}

/** A US attribute: dicom-parser reads binary values in the data set's byte order. */
function ushort(ds, tag) {
  const element = ds.elements[tag];
  if (!element || element.length < 2) return null;
  return ds.uint16(tag);
}

/**
 * Parse one file's bytes. Returns the slice's header fields, or throws DicomError naming
 * the file and saying why it cannot be used.
 *
 * @param {string} name the file name (for messages)
 * @param {ArrayBuffer} buffer the file's bytes
 */
export function parseSlice(name, buffer) {
  const bytes = new Uint8Array(buffer);
  const hasPreamble = bytes.length > 132 && String.fromCharCode(...bytes.subarray(128, 132)) === 'DICM';
  let ds;
  try {
    // A file without the 128-byte preamble and 'DICM' is read as a bare Implicit VR data
    // set (as pydicom's force=True), and kept only if it then looks like an image.
    ds = hasPreamble ? parser().parseDicom(bytes) : parser().parseDicom(bytes, { TransferSyntaxUID: TS.IMPLICIT_LE });
  } catch (err) {
    throw new DicomError(
      hasPreamble
        ? `${name}: not a readable DICOM file (${errorText(err)})`
        : `${name}: not a DICOM file (no 'DICM' marker at byte 128)`,
    );
  }
  if (!hasPreamble && !(ds.elements.x00280010 && ds.elements.x7fe00010)) {
    throw new DicomError(`${name}: not a DICOM file (no 'DICM' marker at byte 128)`);
  }
  const transferSyntax = text(ds, 'x00020010') || TS.IMPLICIT_LE;
  if (!ds.elements.x00280010 && !ds.elements.x00280011) {
    throw new DicomError(`${name}: no (0028,0010) Rows: not an image slice (a report, DICOMDIR or similar)`);
  }
  const module = pixelModule(name, ds, transferSyntax);
  const position = numbers(ds, 'x00200032');
  const orientation = numbers(ds, 'x00200037');
  const pixelSpacing = numbers(ds, 'x00280030');
  return {
    name,
    ds,
    bytes,
    transferSyntax,
    sopInstanceUid: text(ds, 'x00080018') || name.replace(/\.dcm$/i, ''),
    seriesUid: text(ds, 'x0020000e'),
    studyUid: text(ds, 'x0020000d'),
    seriesDescription: text(ds, 'x0008103e'),
    modality: text(ds, 'x00080060') ? text(ds, 'x00080060').toUpperCase() : null,
    position: position && position.length === 3 ? position : null,
    orientation: orientation && orientation.length === 6 ? orientation : null,
    instanceNumber: firstNumber(ds, 'x00200013'),
    sliceThickness: firstNumber(ds, 'x00180050'),
    pixelSpacing: pixelSpacing && pixelSpacing.length === 2 ? pixelSpacing : null,
    imageType: text(ds, 'x00080008') ? text(ds, 'x00080008').split('\\').map((v) => v.trim().toUpperCase()) : null,
    patientId: text(ds, 'x00100020'),
    contrastAgent: text(ds, 'x00180010'),
    module,
  };
}

function errorText(err) {
  const message = err && err.message ? err.message : String(err);
  return message.replace(/^dicomParser\.\w+: /, '').slice(0, 200);
}

/** The Image Pixel / CT Image attributes needed for HU; rejects what cannot be used. */
function pixelModule(name, ds, transferSyntax) {
  const samplesPerPixel = ushort(ds, 'x00280002') ?? 1;
  const photometric = (text(ds, 'x00280004') || 'MONOCHROME2').toUpperCase();
  if (samplesPerPixel !== 1 || !['MONOCHROME1', 'MONOCHROME2'].includes(photometric)) {
    throw new DicomError(
      `${name}: Photometric Interpretation ${photometric} with ${samplesPerPixel} samples per pixel; ` +
        'the model reads grayscale CT slices (MONOCHROME1/2), not colour or screenshot images',
    );
  }
  const frames = firstNumber(ds, 'x00280008') ?? 1;
  if (frames !== 1) {
    throw new DicomError(`${name}: ${frames} frames in one file; this page reads one slice per file (split multi-frame CT first)`);
  }
  const rows = ushort(ds, 'x00280010');
  const columns = ushort(ds, 'x00280011');
  if (!rows || !columns) throw new DicomError(`${name}: (0028,0010) Rows or (0028,0011) Columns is missing or zero`);
  if (rows > MAX_MATRIX_PX || columns > MAX_MATRIX_PX) {
    throw new DicomError(`${name}: the matrix is ${rows}x${columns} pixels; CT slices up to ${MAX_MATRIX_PX} are read (corrupt header?)`);
  }
  const bitsAllocated = ushort(ds, 'x00280100');
  if (![8, 16, 32].includes(bitsAllocated)) {
    throw new DicomError(`${name}: Bits Allocated is ${bitsAllocated ?? 'missing'}; CT pixels need 8, 16 or 32`);
  }
  let bitsStored = ushort(ds, 'x00280101') ?? bitsAllocated;
  if (!(bitsStored >= 1 && bitsStored <= bitsAllocated)) bitsStored = bitsAllocated;
  const signed = ushort(ds, 'x00280103') === 1;
  // Rescale: required on CT; a missing or malformed value is not assumed 1/0 but kept as the
  // slice's rescaleProblem, which makes its series UNREADABLE (src/checks.js).
  const slope = rescaleValue(ds, 'x00281053', '(0028,1053) Rescale Slope');
  const intercept = rescaleValue(ds, 'x00281052', '(0028,1052) Rescale Intercept');
  const element = ds.elements.x7fe00010;
  const native = transferSyntax !== TS.RLE && transferSyntax in SUPPORTED_TRANSFER_SYNTAXES;
  return {
    rows,
    columns,
    bitsAllocated,
    bitsStored,
    signed,
    photometric,
    slope: slope.value ?? 1.0, // the defaults only where rescaleProblem already refuses the slice
    intercept: intercept.value ?? 0.0,
    rescaleProblem: slope.problem || intercept.problem,
    paddingRange: paddingRange(ds, bitsStored, signed),
    // bytes of native (uncompressed) pixel data, to catch a mis-declared matrix; null otherwise
    pixelDataBytes: native && element && !element.encapsulatedPixelData ? element.length : null,
  };
}

/**
 * A Rescale Slope or Intercept: {value} when it is exactly one finite number, else {problem}
 * (the words of ich_edge/dicom/pixels.py rescale_of). Both are Type 1 on CT.
 */
function rescaleValue(ds, tag, label) {
  const raw = ds.string(tag);
  if (raw === undefined || raw.trim() === '') {
    return {
      value: null,
      problem: `${label} is missing; it is required (Type 1) on CT slices and without it the HU are ` +
        'unknown: fix the export (PACS/anonymiser) so that it keeps the tag',
    };
  }
  const values = numbers(ds, tag);
  if (!values || values.length !== 1) {
    return { value: null, problem: `${label} is not one finite number; the HU are unknown: fix the export that wrote it` };
  }
  return { value: values[0], problem: null };
}

/** (low, high) stored values that are padding, from (0028,0120) and (0028,0121), or null. */
function paddingRange(ds, bitsStored, signed) {
  const value = ushort(ds, 'x00280120');
  if (value === null) return null;
  const limit = ushort(ds, 'x00280121');
  // US or SS: bring both ends into the pixels' bit pattern, so -2000 read as 63536 matches.
  const ends = [value, limit === null ? value : limit].map((v) => asStored(v, bitsStored, signed));
  return [Math.min(...ends), Math.max(...ends)];
}

/** A padding tag's value in the pixels' bit pattern (exported for the unit tests). */
export function asStoredForTest(value, bitsStored, signed) {
  return asStored(value, bitsStored, signed);
}

function asStored(value, bitsStored, signed) {
  const mask = bitsStored >= 32 ? 0xffffffff : 2 ** bitsStored - 1;
  let masked = Number(BigInt.asUintN(32, BigInt(value)) & BigInt(mask));
  if (signed && masked >= 2 ** (bitsStored - 1)) masked -= 2 ** bitsStored;
  return masked;
}

/**
 * The slice's stored pixel values, masked to Bits Stored and sign-extended when signed.
 * Decodes native (little/big endian) and RLE Lossless pixel data; names anything else.
 *
 * @returns {Int32Array|Float64Array} rows * columns integers, row by row (Float64Array for
 *     32-bit samples, which need more than an int32)
 */
export function storedValues(slice) {
  const { module } = slice;
  const numPixels = module.rows * module.columns;
  const bytesPerSample = module.bitsAllocated / 8;
  const pixels = pixelData(slice, numPixels, bytesPerSample, (frame) => ({
    planes: decodeRlePlanes(frame, module.rows, module.columns, module.bitsAllocated, 1),
  }));
  const { bitsStored, signed } = module;
  if (bytesPerSample <= 2) {
    // Masking to Bits Stored and sign extension in one integer step: keep the low bitsStored
    // bits, then (x ^ signBit) - signBit maps [signBit, 2 * signBit) to [-signBit, 0) and
    // leaves [0, signBit) as it is (two's complement); flip 0 leaves unsigned values alone.
    const mask = 2 ** bitsStored - 1; // stray high bits dropped
    const flip = signed ? 2 ** (bitsStored - 1) : 0;
    const out = new Int32Array(numPixels);
    if (pixels.planes && pixels.planes.length === 2) {
      // RLE, 16 bits: assemble each sample from its high and low byte planes directly.
      const [high, low] = pixels.planes;
      for (let i = 0; i < numPixels; i++) out[i] = ((((high[i] << 8) | low[i]) & mask) ^ flip) - flip;
    } else {
      const samples = pixels.planes ? pixels.planes[0] : unsignedSamples(pixels.raw, bytesPerSample, pixels.littleEndian, numPixels);
      for (let i = 0; i < numPixels; i++) out[i] = ((samples[i] & mask) ^ flip) - flip;
    }
    return out;
  }
  // 32-bit samples: past int32, in float64 arithmetic (exact below 2 ** 53).
  const samples = pixels.planes ? samplesFromPlanes32(pixels.planes, numPixels) : unsignedSamples(pixels.raw, 4, pixels.littleEndian, numPixels);
  const out = new Float64Array(numPixels);
  const span = 2 ** bitsStored;
  const signBit = 2 ** (bitsStored - 1);
  for (let i = 0; i < numPixels; i++) {
    const v = bitsStored >= 32 ? samples[i] : samples[i] % span;
    out[i] = signed && v >= signBit ? v - span : v;
  }
  return out;
}

/**
 * The slice's pixel data, checked: RLE Lossless: what decodeRle(frame) returns for the frame's
 * bytes (the caller's decoder, rle.js); native: {raw, littleEndian}, the pixel bytes.
 * Throws DicomError naming the file when the data is missing, truncated, corrupt (an RleError
 * from decodeRle) or in a transfer syntax this page does not decode.
 */
function pixelData(slice, numPixels, bytesPerSample, decodeRle) {
  const { ds, module, name, transferSyntax } = slice;
  const element = ds.elements.x7fe00010;
  if (!element) throw new DicomError(`${name}: no (7FE0,0010) Pixel Data`);
  if (transferSyntax === TS.RLE) {
    if (!element.encapsulatedPixelData) throw new DicomError(`${name}: RLE Lossless pixel data is not encapsulated`);
    try {
      const frame = parser().readEncapsulatedPixelDataFromFragments(ds, element, 0, element.fragments.length);
      return decodeRle(frame);
    } catch (err) {
      const why = err instanceof RleError ? err.message : errorText(err);
      throw new DicomError(`${name}: cannot decode RLE Lossless pixel data (${why})`);
    }
  }
  if (transferSyntax in SUPPORTED_TRANSFER_SYNTAXES) {
    const need = numPixels * bytesPerSample;
    if (element.length < need || element.dataOffset + need > slice.bytes.length) {
      throw new DicomError(
        `${name}: pixel data truncated (${Math.min(element.length, slice.bytes.length - element.dataOffset)} of ${need} bytes); copy the file again`,
      );
    }
    return { raw: slice.bytes.subarray(element.dataOffset, element.dataOffset + need), littleEndian: transferSyntax !== TS.EXPLICIT_BE };
  }
  const known = OTHER_TRANSFER_SYNTAXES[transferSyntax];
  throw new DicomError(
    `${name}: pixel data in ${known ? `${known} (${transferSyntax})` : `transfer syntax ${transferSyntax}`}, ` +
      `which this page does not decode; it reads ${Object.values(SUPPORTED_TRANSFER_SYNTAXES).join(', ')}. ` +
      'Convert the series to uncompressed DICOM first, e.g. with GDCM: gdcmconv --raw IN OUT (or dcmtk: dcmdjpeg IN OUT for JPEG).',
  );
}

/** 32-bit unsigned samples from four RLE byte planes, most significant first. */
function samplesFromPlanes32(planes, numPixels) {
  const [b3, b2, b1, b0] = planes;
  const out = new Uint32Array(numPixels);
  for (let i = 0; i < numPixels; i++) out[i] = (b3[i] << 24) | (b2[i] << 16) | (b1[i] << 8) | b0[i];
  return out;
}

const PLATFORM_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Raw pixel bytes as unsigned samples (a typed-array view when the byte order allows). */
function unsignedSamples(raw, bytesPerSample, littleEndian, numPixels) {
  if (bytesPerSample === 1) return raw.subarray(0, numPixels);
  const Typed = bytesPerSample === 2 ? Uint16Array : Uint32Array;
  if (littleEndian === PLATFORM_LITTLE_ENDIAN) {
    const aligned = raw.byteOffset % bytesPerSample === 0 ? raw : raw.slice(0, numPixels * bytesPerSample);
    return new Typed(aligned.buffer, aligned.byteOffset, numPixels);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Typed(numPixels);
  for (let i = 0; i < numPixels; i++) {
    out[i] = bytesPerSample === 2 ? view.getUint16(2 * i, littleEndian) : view.getUint32(4 * i, littleEndian);
  }
  return out;
}

/**
 * HU of one stored value s: float32(s) * float32(slope) + float32(intercept), float32 at every
 * step and each step only where ToHounsfield does it (slope != 1, intercept != 0); padding
 * and values below air -> air. The one definition of the rule: storedToHu and sliceHu apply
 * it to each pixel or through a table of it (huTable), which gives the same float32 bits.
 */
function huOf(s, slope, intercept, rescaleSlope, rescaleIntercept, padding, air) {
  let v = Math.fround(s);
  if (rescaleSlope) v = Math.fround(v * slope);
  if (rescaleIntercept) v = Math.fround(v + intercept);
  if (padding !== null && s >= padding[0] && s <= padding[1]) v = air;
  return v < air ? air : v;
}

/**
 * Stored values to float32 HU with padding and sub-air values set to airHu.
 * float32 at every step, as ich_edge.transforms.ToHounsfield (numpy float32).
 */
export function storedToHu(stored, module, airHu) {
  const slope = Math.fround(module.slope);
  const intercept = Math.fround(module.intercept);
  const air = Math.fround(airHu);
  // Decided once here, not per pixel (the JIT inlines huOf with these loop-invariant tests).
  const rescaleSlope = module.slope !== 1;
  const rescaleIntercept = module.intercept !== 0;
  const padding = module.paddingRange;
  const hu = new Float32Array(stored.length);
  for (let i = 0; i < stored.length; i++) {
    hu[i] = huOf(stored[i], slope, intercept, rescaleSlope, rescaleIntercept, padding, air);
  }
  return hu;
}

/**
 * The slice's HU image: storedToHu(storedValues(slice), slice.module, airHu), bit for bit
 * (and the same DicomErrors), in one pass over the pixels where samples are 8 or 16 bits.
 * Such a sample has at most 65536 bit patterns, so each pixel's HU is looked up in a table of
 * huOf() over all of them (huTable) instead of being masked, sign-extended, stored as an
 * int32, read back and rescaled; 16-bit RLE pixels are looked up as they are decoded.
 * 32-bit samples take the two steps.
 *
 * @returns {Float32Array} rows * columns HU, row by row
 */
export function sliceHu(slice, airHu) {
  const { module } = slice;
  const { rows, columns, bitsAllocated } = module;
  const numPixels = rows * columns;
  const bytesPerSample = bitsAllocated / 8;
  const tableFits = module.bitsStored >= 1 && module.bitsStored <= 16; // as parseSlice gives for 8 and 16 bits
  if (bytesPerSample > 2 || !tableFits) return storedToHu(storedValues(slice), module, airHu);
  const table = huTable(module, Math.fround(airHu));
  const mask = table.length - 1; // the low Bits Stored bits: stray high bits dropped
  const hu = new Float32Array(numPixels);
  const pixels = pixelData(slice, numPixels, bytesPerSample, (frame) => {
    if (bytesPerSample === 1) return { samples: decodeRlePlanes(frame, rows, columns, bitsAllocated, 1)[0] };
    // 16 bits: each sample is looked up as its low byte is decoded (rle.js), hu is filled.
    decodeRle16Mapped(frame, rows, columns, table, mask, hu);
    return { filled: true };
  });
  if (pixels.filled) return hu;
  const samples = pixels.samples || unsignedSamples(pixels.raw, bytesPerSample, pixels.littleEndian, numPixels);
  for (let i = 0; i < numPixels; i++) hu[i] = table[samples[i] & mask];
  return hu;
}

/** The last table built: the slices of a series share their rescale, so it is built once. */
let cachedHuTable = { key: null, table: null };

/**
 * HU by stored bit pattern, for 1 to 16 Bits Stored: table[u] = huOf(stored value of u) for
 * every pattern u of bitsStored bits, the stored value being u sign-extended when signed
 * (as storedValues does), so that table[sample & mask] is the sample's HU.
 */
function huTable(module, air) {
  const { bitsStored, signed, slope, intercept, paddingRange } = module;
  const key = [bitsStored, signed, slope, intercept, paddingRange ? paddingRange.join(',') : '-', air].join(' ');
  if (cachedHuTable.key === key) return cachedHuTable.table;
  const size = 2 ** bitsStored;
  const flip = signed ? size / 2 : 0; // sign extension as in storedValues
  const f32Slope = Math.fround(slope);
  const f32Intercept = Math.fround(intercept);
  const table = new Float32Array(size);
  for (let u = 0; u < size; u++) {
    table[u] = huOf((u ^ flip) - flip, f32Slope, f32Intercept, slope !== 1, intercept !== 0, paddingRange, air);
  }
  cachedHuTable = { key, table };
  return table;
}

/**
 * Keep one CT series: the one with the most slices. Returns {slices, problems, otherSeries}.
 * @param {object[]} slices parsed slices (parseSlice)
 */
export function pickSeries(slices) {
  const problems = [];
  const ct = slices.filter((s) => s.modality === null || s.modality === 'CT');
  const notCt = slices.length - ct.length;
  if (!ct.length) {
    const found = [...new Set(slices.map((s) => s.modality))].join(', ');
    throw new DicomError(`no CT slice: the files are ${found}; the model reads head CT only`);
  }
  if (notCt) problems.push(`${notCt} non-CT file(s) skipped`);
  const groups = new Map();
  for (const s of ct) {
    const key = s.seriesUid || '(no Series Instance UID)';
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(s);
  }
  const ordered = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
  const [seriesUid, kept] = ordered[0];
  if (ordered.length > 1) {
    problems.push(
      `${ordered.length} series in the files; kept ${seriesUid} (${kept.length} slices), ignored ` +
        ordered.slice(1).map(([uid, list]) => `${uid} (${list.length})`).join(', '),
    );
  }
  const shapes = new Map();
  for (const s of kept) {
    const key = `${s.module.rows}x${s.module.columns}`;
    shapes.set(key, (shapes.get(key) || 0) + 1);
  }
  const shape = [...shapes.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const sameShape = kept.filter((s) => `${s.module.rows}x${s.module.columns}` === shape);
  if (sameShape.length < kept.length) problems.push(`${kept.length - sameShape.length} slice(s) not ${shape} pixels skipped`);
  return { seriesUid, slices: sameShape, problems, numSeries: ordered.length };
}

/**
 * The six direction cosines of (0020,0037) most slices carry, grouped rounded to 3 decimals
 * (the first unrounded orientation of the largest group, the first met on a tie); null when
 * no slice has one.
 */
export function commonOrientation(slices) {
  const counts = new Map();
  for (const s of slices) {
    if (!s.orientation) continue;
    const key = s.orientation.map((v) => v.toFixed(3).replace(/^-(0\.000)$/, '$1')).join(','); // -0.000 is 0.000
    if (!counts.has(key)) counts.set(key, { n: 0, exact: s.orientation });
    counts.get(key).n += 1;
  }
  if (!counts.size) return null;
  return [...counts.values()].sort((a, b) => b.n - a.n)[0].exact;
}

/**
 * Unit normal of the slices, turned towards the head: row cosines x column cosines of the most
 * common orientation, negated when its z component is negative (mirrored image axes).
 */
export function sliceNormal(slices, problems) {
  const common = commonOrientation(slices);
  if (!common) {
    problems.push('(0020,0037) Image Orientation (Patient) missing; assumed axial slices');
    return [0, 0, 1];
  }
  const [r0, r1, r2, c0, c1, c2] = common;
  const n = [r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0];
  const norm = Math.hypot(...n);
  if (norm < 1e-6) {
    problems.push('(0020,0037) Image Orientation (Patient) is degenerate; assumed axial slices');
    return [0, 0, 1];
  }
  const towardsHead = n[2] < 0 ? -norm : norm;
  return n.map((v) => v / towardsHead);
}

/**
 * Sort slices bottom of the head to the top (the manifest's slice_order rule).
 * Returns {slices, method, problems}; duplicate positions keep the first slice.
 */
export function sortSlices(slices) {
  const problems = [];
  const missing = slices.filter((s) => !s.position).length;
  if (missing === 0) {
    const normal = sliceNormal(slices, problems);
    const height = (s) => s.position[0] * normal[0] + s.position[1] * normal[1] + s.position[2] * normal[2];
    const sorted = slices
      .map((s) => ({ s, h: height(s) }))
      .sort((a, b) => a.h - b.h || (a.s.instanceNumber || 0) - (b.s.instanceNumber || 0));
    const kept = [sorted[0]];
    for (const item of sorted.slice(1)) {
      if (item.h - kept[kept.length - 1].h < DUPLICATE_TOLERANCE_MM) {
        problems.push(`${item.s.name}: same position as ${kept[kept.length - 1].s.name}; kept the first`);
      } else {
        kept.push(item);
      }
    }
    return { slices: kept.map((item) => item.s), method: 'position', problems };
  }
  const fallback = `(0020,0032) Image Position (Patient) missing on ${missing} of ${slices.length} slices`;
  if (slices.every((s) => s.instanceNumber !== null)) {
    problems.push(`${fallback}; sorted by Instance Number, which is often not the anatomical order: check the series`);
    return { slices: [...slices].sort((a, b) => a.instanceNumber - b.instanceNumber), method: 'instance_number', problems };
  }
  problems.push(`${fallback} and Instance Number missing too; kept file name order: check the series`);
  return { slices: [...slices].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)), method: 'file_order', problems };
}
