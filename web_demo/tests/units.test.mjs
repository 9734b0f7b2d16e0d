// Unit tests of the page's DOM-free modules, with Node's test runner: node --test tests/
// (run by tests/apps/test_web_demo.py). The browser test checks the whole page.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import { decodeRle16Mapped, decodeRleFrame, decodeRlePlanes, RleError } from '../src/rle.js';
import { areaResize, roundHalfEven, windowsToUint8 } from '../src/preprocess.js';
import { classifyStudy, studyProbabilities, windowStarts } from '../src/sequence.js';

const require = createRequire(import.meta.url);
globalThis.dicomParser = require('dicom-parser');
const { DicomError, asStoredForTest, parseSlice, sliceHu, sortSlices, storedToHu, storedValues } = await import('../src/dicom.js');
const checksModule = await import('../src/checks.js');
const {
  axesAngleDeg, huCounts, huProblem, inputChecksOf, keepSeriesOrientation, namesContrastAgent, neighbourCorrelation,
  pixelModuleProblem, seriesCoverage, seriesProblem, sliceStructureProblem, unreadableReasons, verdictOf,
} = checksModule;

/**
 * manifest.input_checks as ich-edge builds it (never retyped here): $ICH_EDGE_INPUT_CHECKS (a JSON
 * file, written by tests/apps/test_web_demo.py), else the committed manifest's (when they carry
 * every rule the page reads), else asked of the repository's Python (ich_edge.assets.manifest.input_checks).
 */
function loadInputChecks() {
  if (process.env.ICH_EDGE_INPUT_CHECKS) return JSON.parse(fs.readFileSync(process.env.ICH_EDGE_INPUT_CHECKS, 'utf8'));
  const manifest = JSON.parse(fs.readFileSync(new URL('../../android_demo_assets/manifest.json', import.meta.url), 'utf8'));
  if (inputChecksOf(manifest)) return manifest.input_checks;
  const venv = new URL('../../.venv/bin/python', import.meta.url).pathname;
  const python = fs.existsSync(venv) ? venv : 'python3';
  const code = 'import json; from ich_edge.assets.manifest import input_checks; print(json.dumps(input_checks()))';
  return JSON.parse(execFileSync(python, ['-c', code], { cwd: new URL('../..', import.meta.url).pathname, encoding: 'utf8' }));
}
const CHECKS = loadInputChecks();

/** An RLE frame from segments (each an array of bytes), header offsets filled in. */
function frame(segments) {
  const header = new Uint8Array(64);
  const view = new DataView(header.buffer);
  view.setUint32(0, segments.length, true);
  let offset = 64;
  segments.forEach((segment, i) => {
    view.setUint32(4 + 4 * i, offset, true);
    offset += segment.length;
  });
  return Uint8Array.from([...header, ...segments.flat()]);
}

test('RLE: literal and replicate runs, -128 no-op, one 8-bit plane', () => {
  // literal 3 bytes (n=2), replicate 0x07 four times (n=-3 -> 253), no-op, literal 1 byte
  const out = decodeRleFrame(frame([[2, 1, 2, 3, 253, 7, 128, 0, 9]]), 2, 4, 8);
  assert.deepEqual([...out], [1, 2, 3, 7, 7, 7, 7, 9]);
});

test('RLE: 16-bit samples are two planes, high byte first, output little endian', () => {
  // pixels 0x0102, 0xFF80 (-128 as int16): high plane [0x01, 0xFF], low plane [0x02, 0x80]
  const out = decodeRleFrame(frame([[1, 0x01, 0xff], [1, 0x02, 0x80]]), 1, 2, 16);
  const view = new DataView(out.buffer);
  assert.equal(view.getUint16(0, true), 0x0102);
  assert.equal(view.getInt16(2, true), -128);
});

test('RLE: 32-bit samples are four planes, most significant first', () => {
  const out = decodeRleFrame(frame([[0, 0x12], [0, 0x34], [0, 0x56], [0, 0x78]]), 1, 1, 32);
  assert.equal(new DataView(out.buffer).getUint32(0, true), 0x12345678);
});

test('RLE: a segment padded to an even length decodes; a short one is an error', () => {
  const padded = decodeRleFrame(frame([[2, 5, 6, 7, 0]]), 1, 3, 8); // trailing pad byte
  assert.deepEqual([...padded], [5, 6, 7]);
  assert.throws(() => decodeRleFrame(frame([[1, 5, 6]]), 1, 3, 8), RleError);
  assert.throws(() => decodeRleFrame(frame([[0, 1]]), 1, 1, 16), /bits need 2/);
});

test('RLE: decodeRlePlanes gives the byte planes; decodeRle16Mapped looks each sample up', () => {
  // pixels 0x0102, 0xFF80, 0x0000 x 40 (a long replicate run in both planes), 0x7FFF
  const high = [1, 0x01, 0xff, 216, 0, 0, 0x7f];
  const low = [1, 0x02, 0x80, 216, 0, 0, 0xff];
  const f = frame([high, low]);
  const planes = decodeRlePlanes(f, 1, 43, 16).map((plane) => [...plane]);
  const interleaved = decodeRleFrame(f, 1, 43, 16);
  assert.deepEqual(planes[0], [...interleaved].filter((_, i) => i % 2 === 1)); // high bytes
  assert.deepEqual(planes[1], [...interleaved].filter((_, i) => i % 2 === 0));
  const table = Float32Array.from({ length: 65536 }, (_, u) => u / 2); // any table
  const out = new Float32Array(43);
  decodeRle16Mapped(f, 1, 43, table, 0xffff, out);
  assert.deepEqual([...out], [...new Uint16Array(interleaved.buffer)].map((u) => u / 2));
  decodeRle16Mapped(f, 1, 43, table.subarray(0, 4096), 0x0fff, out); // mask: 12 bits stored
  assert.deepEqual([...out], [...new Uint16Array(interleaved.buffer)].map((u) => (u & 0xfff) / 2));
});

test('RLE: every decoder raises the same RleError on a corrupt or truncated frame', () => {
  const good = frame([[1, 0x01, 0xff], [1, 0x02, 0x80]]);
  const withHeader = (edit) => {
    const copy = good.slice();
    edit(new DataView(copy.buffer));
    return copy;
  };
  const bad = [
    good.subarray(0, 40), // shorter than the header
    withHeader((v) => v.setUint32(0, 3, true)), // 3 segments listed, 2 needed
    withHeader((v) => v.setUint32(8, 500, true)), // segment 2 starts past the end
    withHeader((v) => v.setUint32(4, 10, true)), // segment 1 starts inside the header
    good.subarray(0, good.length - 1), // low plane one byte short
    frame([[0, 0x01], [1, 0x02, 0x80]]), // high plane one byte short
  ];
  for (const f of bad) {
    let message = null;
    try {
      decodeRleFrame(f, 1, 2, 16);
    } catch (err) {
      assert.ok(err instanceof RleError);
      message = err.message;
    }
    assert.ok(message, 'decodeRleFrame must throw');
    assert.throws(() => decodeRlePlanes(f, 1, 2, 16), (err) => err instanceof RleError && err.message === message);
    assert.throws(
      () => decodeRle16Mapped(f, 1, 2, new Float32Array(65536), 0xffff, new Float32Array(2)),
      (err) => err instanceof RleError && err.message === message,
    );
  }
});

/**
 * A minimal DICOM file: preamble, (0002,0010), the attributes, then the pixel data element
 * (explicit VR; the data set big endian for Explicit VR Big Endian).
 */
function dicomFile(transferSyntax, attributes, pixelElement) {
  const bytes = [...new Uint8Array(128), ...new TextEncoder().encode('DICM')];
  let bigEndian = false; // the meta group is always little endian
  const u16 = (v) => (bigEndian ? [(v >> 8) & 255, v & 255] : [v & 255, (v >> 8) & 255]);
  const u32 = (v) => (bigEndian ? [...u16(v >>> 16), ...u16(v & 0xffff)] : [...u16(v & 0xffff), ...u16(v >>> 16)]);
  const element = (group, tag, vr, value) => bytes.push(...u16(group), ...u16(tag), ...new TextEncoder().encode(vr), ...u16(value.length), ...value);
  const text = (s) => [...new TextEncoder().encode(s.length % 2 ? `${s} ` : s)];
  element(0x0002, 0x0010, 'UI', [...new TextEncoder().encode(transferSyntax), ...(transferSyntax.length % 2 ? [0] : [])]);
  bigEndian = transferSyntax === '1.2.840.10008.1.2.2';
  for (const [group, tag, vr, value] of attributes) element(group, tag, vr, vr === 'US' ? u16(value) : text(String(value)));
  const pixelHeader = (length) => [...u16(0x7fe0), ...u16(0x0010), ...new TextEncoder().encode('OB'), 0, 0, ...u32(length)];
  if (pixelElement.frame) {
    const item = (tag, content) => [...u16(0xfffe), ...u16(tag), ...u32(content.length), ...content];
    bytes.push(...pixelHeader(0xffffffff), ...item(0xe000, []), ...item(0xe000, [...pixelElement.frame]), ...item(0xe0dd, []));
  } else {
    bytes.push(...pixelHeader(pixelElement.raw.length), ...pixelElement.raw);
  }
  return Uint8Array.from(bytes).buffer;
}

test('pixel data: storedValues and sliceHu on 16-bit signed RLE and native files', () => {
  // 12 bits stored, signed, stray bits above them; slope 1.25, intercept -1000.3, padding -2000
  const samples = [0xf830, 0x0fff, 0x0800, 0x07ff, 0x0000, 0x3001];
  const expected = [-2000, -1, -2048, 2047, 0, 1]; // masked to 12 bits, sign-extended
  const attributes = [
    [0x0028, 0x0010, 'US', 2], [0x0028, 0x0011, 'US', 3], [0x0028, 0x0100, 'US', 16], [0x0028, 0x0101, 'US', 12],
    [0x0028, 0x0103, 'US', 1], [0x0028, 0x0120, 'US', 0xf830], [0x0028, 0x1052, 'DS', '-1000.3'], [0x0028, 0x1053, 'DS', '1.25'],
  ];
  const f = Math.fround;
  const hu = expected.map((s) => (s === -2000 ? -1024 : Math.max(-1024, f(f(f(s) * f(1.25)) + f(-1000.3)))));
  const rle = frame([[5, ...samples.map((v) => v >> 8)], [5, ...samples.map((v) => v & 255)]]);
  const little = samples.flatMap((v) => [v & 255, v >> 8]);
  const files = {
    rle: dicomFile('1.2.840.10008.1.2.5', attributes, { frame: rle }),
    'explicit little endian': dicomFile('1.2.840.10008.1.2.1', attributes, { raw: little }),
    'explicit big endian': dicomFile('1.2.840.10008.1.2.2', attributes, { raw: samples.flatMap((v) => [v >> 8, v & 255]) }),
  };
  for (const [kind, buffer] of Object.entries(files)) {
    const slice = parseSlice(`${kind}.dcm`, buffer);
    assert.deepEqual(slice.module.paddingRange, [-2000, -2000], kind);
    assert.deepEqual([...storedValues(slice)], expected, kind);
    assert.deepEqual([...sliceHu(slice, -1024)], hu, kind);
    assert.deepEqual([...storedToHu(storedValues(slice), slice.module, -1024)], hu, kind);
  }
  // a truncated RLE segment: the same DicomError from storedValues and sliceHu
  const truncated = parseSlice('cut.dcm', dicomFile('1.2.840.10008.1.2.5', attributes, { frame: rle.subarray(0, rle.length - 2) }));
  const message = 'cut.dcm: cannot decode RLE Lossless pixel data (RLE segment 2 decodes to 4 bytes, 6 expected: the data is truncated)';
  assert.throws(() => storedValues(truncated), (err) => err instanceof DicomError && err.message === message);
  assert.throws(() => sliceHu(truncated, -1024), (err) => err instanceof DicomError && err.message === message);
});

test('round half to even as numpy rint', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 254.5, 2.4999, 2.5001].map(roundHalfEven), [0, 2, 2, 4, 254, 2, 3]);
});

test('windows: float32 arithmetic and rounding (a value numpy rounds to 128, not 127)', () => {
  // (40 - 0) * float32(1/80) = 0.5 in float32; 0.5 * 255 = 127.5 -> 128 (half to even)
  const out = windowsToUint8(Float32Array.from([40, -1024, 3000]), [{ channel: 0, low_hu: 0, scale_per_hu: 0.012500000186264515 }]);
  assert.deepEqual([...out], [128, 0, 255]);
});

test('windows: the clamped store equals clip then round half to even; air is skipped exactly', () => {
  // the rule written out as ich_edge does it, for comparison
  const reference = (small, windows) => {
    const out = new Uint8Array(small.length * windows.length);
    windows.forEach((w, ch) => {
      for (let p = 0; p < small.length; p++) {
        let u = Math.fround(Math.fround(small[p] - Math.fround(w.low_hu)) * Math.fround(w.scale_per_hu));
        u = u < 0 ? 0 : u > 1 ? 1 : u;
        out[p * windows.length + ch] = roundHalfEven(Math.fround(u * 255));
      }
    });
    return out;
  };
  const brain = { channel: 0, low_hu: 0, scale_per_hu: 0.012500000186264515 };
  const inverted = { channel: 1, low_hu: -800, scale_per_hu: -0.001 }; // no air shortcut then
  const values = Float32Array.from([-Infinity, -1024, -800, -0.0001, 0, 0.16, 0.2, 39.8, 40, 79.9, 80, 3000, Infinity, NaN]);
  for (const windows of [[brain], [brain, inverted]]) {
    assert.deepEqual([...windowsToUint8(values, windows)], [...reference(values, windows)]);
  }
});

test('area resize: non-integer factors are the float32 weighted sums, rows then columns', () => {
  // 5 -> 2 per axis: s = 2.5, output 0 takes rows 0, 1 (weight 0.4) and 2 (0.2)
  const hu = Float32Array.from({ length: 25 }, (_, i) => Math.fround(i * 1.1 - 7));
  const f = Math.fround;
  const w = [[0, f(0.4)], [1, f(0.4)], [2, f(0.2)]];
  let first = 0;
  for (const [c, wc] of w) {
    let column = 0;
    for (const [r, wr] of w) column = f(column + f(wr * hu[r * 5 + c]));
    first = f(first + f(wc * column));
  }
  assert.equal(areaResize(hu, 5, 5, 2)[0], first);
  assert.equal(areaResize(hu, 5, 5, 2).length, 4);
});

test('area resize: block mean for integer factors, identity at size', () => {
  const hu = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
  assert.deepEqual([...areaResize(hu, 4, 4, 2)], [3.5, 5.5, 11.5, 13.5]);
  assert.equal(areaResize(hu, 4, 4, 4), hu);
  const up = areaResize(Float32Array.from([0, 8, 16, 24]), 2, 2, 4); // upscaling: nearest areas
  assert.deepEqual([...up.subarray(0, 4)], [0, 0, 8, 8]);
});

test('window starts and stitching follow the manifest rule', () => {
  assert.deepEqual(windowStarts(32, 24, 12), [0, 8]);
  assert.deepEqual(windowStarts(24, 24, 12), [0]);
  assert.deepEqual(windowStarts(10, 24, 12), [0]);
  assert.deepEqual(windowStarts(50, 24, 12), [0, 12, 24, 26]);
});

test('classifyStudy: mean over covering windows, padding dropped, study = max', async () => {
  const features = [0, 1, 2].map((v) => Float32Array.of(v));
  const calls = [];
  const classify = async (window) => {
    calls.push([...window]);
    return Float32Array.from(window, (v) => v / 10); // one label: feature / 10
  };
  const { slices, starts } = await classifyStudy(features, Float32Array.of(-1), classify, 4, 2, 1);
  assert.deepEqual(starts, [0]);
  assert.deepEqual(calls, [[0, 1, 2, -1]]); // padded at the end with the blank features
  assert.deepEqual(slices.map((row) => row[0]), [0, Math.fround(0.1), Math.fround(0.2)]);
  assert.equal(studyProbabilities(slices)[0], Math.fround(0.2));
  const five = [0, 1, 2, 3, 4].map((v) => Float32Array.of(v));
  let k = 0;
  const out = await classifyStudy(five, null, async (w) => { k += 1; return new Float32Array(w.length).fill(k); }, 4, 2, 1);
  assert.deepEqual(out.starts, [0, 1]);
  // slice 0 only in window 1 (all 1), slices 1..3 in both (mean 1.5), slice 4 only in window 2
  assert.deepEqual(out.slices.map((row) => row[0]), [1, 1.5, 1.5, 1.5, 2]);
});

test('HU: float32 steps, padding range and sub-air values to air', () => {
  const module = { slope: 1.25, intercept: -1000.3, paddingRange: [-2048, -1900] };
  const hu = storedToHu(Float64Array.of(-2000, 100, -2100, 0), module, -1024);
  const f = Math.fround;
  assert.deepEqual([...hu], [-1024, f(f(f(100) * f(1.25)) + f(-1000.3)), -1024, f(-1000.3)]);
  // an Int32Array with Bits Stored takes the lookup table; values outside its range are computed
  const twelve = { ...module, bitsStored: 12, signed: true };
  const values = Int32Array.of(-2000, 100, -2048, 2047, 5000, -3000, 0);
  assert.deepEqual([...storedToHu(values, twelve, -1024)], [...storedToHu(Float64Array.from(values), twelve, -1024)]);
  assert.equal(asStoredForTest(63536, 16, true), -2000); // SS -2000 read as US
  assert.equal(asStoredForTest(63536, 12, true), -2000);
});

test('slices sort by position along the normal, not by instance number', () => {
  const slice = (name, z, n) => ({ name, position: [0, 0, z], orientation: [1, 0, 0, 0, 1, 0], instanceNumber: n });
  const { slices, method } = sortSlices([slice('a', 10, 1), slice('b', -5, 2), slice('c', 3, 3)]);
  assert.equal(method, 'position');
  assert.deepEqual(slices.map((s) => s.name), ['b', 'c', 'a']);
  // mirrored image axes (column cosine flipped): row x column points to the feet, the order still
  // follows +z, the patient's head (ich-edge's rule)
  const flipped = [10, -5, 3].map((z, i) => ({ ...slice(String(i), z, i), orientation: [1, 0, 0, 0, -1, 0] }));
  assert.deepEqual(sortSlices(flipped).slices.map((s) => s.position[2]), [-5, 3, 10]);
});

// --- input checks (src/checks.js, manifest.input_checks) ------------------------------------------

const AXIAL = [1, 0, 0, 0, 1, 0];

/** A parsed slice as checks.js sees it (the fields parseSlice gives). */
function fakeSlice(name, z, extra = {}) {
  return {
    name, position: [0, 0, z], orientation: AXIAL, imageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'], patientId: 'P1',
    sliceThickness: 5, module: { rows: 4, columns: 4, bitsAllocated: 16, slope: 1, intercept: -1024, rescaleProblem: null, paddingRange: null, pixelDataBytes: 32 },
    ...extra,
  };
}

/** A head-like HU slice: air outside, a bone ring, brain inside with a smooth bump (structured). */
function headSlice(size, seed = 1) {
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
  const hu = new Float32Array(size * size);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      const radius = Math.hypot(r - size / 2 + 0.5, c - size / 2 + 0.5) / (size / 2);
      let v = -1024;
      if (radius < 0.85) v = 1200 + 50 * random();
      if (radius < 0.75) v = 30 + 20 * Math.cos(6 * radius) + 4 * random();
      hu[r * size + c] = v;
    }
  }
  return hu;
}

test('input checks: a manifest without them judges nothing', () => {
  assert.equal(inputChecksOf({ preprocessing: {} }), null);
  assert.equal(inputChecksOf({ input_checks: CHECKS }), CHECKS);
  const reasons = unreadableReasons([fakeSlice('a', 0)], null);
  assert.equal(reasons.length, 1);
  assert.match(reasons[0], /no input_checks.*regenerate the assets/);
});

test('orientation: a slice whose axes are off the series is skipped; the limit comes from the manifest', () => {
  assert.equal(axesAngleDeg(AXIAL, AXIAL), 0);
  assert.ok(Math.abs(axesAngleDeg([-1, 0, 0, 0, 1, 0], AXIAL) - 180) < 1e-9);
  const tilted = [1, 0, 0, 0, Math.cos(0.1), Math.sin(0.1)]; // 5.7 deg
  const slices = [fakeSlice('a', 0), fakeSlice('b', 5), fakeSlice('c', 10, { orientation: tilted }), fakeSlice('d', 15, { orientation: null })];
  const { kept, problems } = keepSeriesOrientation(slices, CHECKS);
  assert.deepEqual(kept.map((s) => s.name), ['a', 'b', 'd']);
  assert.deepEqual(problems, ["c: image axes 6 deg from the series' (0020,0037) Image Orientation (Patient); slice skipped"]);
  const loose = { ...CHECKS, orientation: { ...CHECKS.orientation, max_orientation_diff_deg: 10 } };
  assert.equal(keepSeriesOrientation(slices, loose).kept.length, 4);
});

test('series rules: localizer, several patients, not axial, mirrored axes -> UNREADABLE', () => {
  const series = (extra) => [0, 5, 10].map((z, i) => fakeSlice(`s${i}`, z, extra));
  assert.equal(seriesProblem(series({}), CHECKS), null);
  assert.equal(unreadableReasons(series({}), CHECKS).length, 0);
  assert.match(seriesProblem(series({ imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] }), CHECKS), /^localizer \(\(0008,0008\) Image Type ORIGINAL\\PRIMARY\\LOCALIZER\)/);
  const two = series({});
  two[1] = { ...two[1], patientId: 'P2' };
  assert.match(seriesProblem(two, CHECKS), /2 different \(0010,0020\) Patient IDs/);
  assert.match(seriesProblem(series({ orientation: [0, 1, 0, 0, 0, -1] }), CHECKS), /^not axial: slice normal 90 deg/);
  const mirrored = series({ orientation: [-1, 0, 0, 0, 1, 0] });
  assert.match(seriesProblem(mirrored, CHECKS), /^image axes mirrored or rotated: .* -1\\0\\0\\0\\1\\0.*1\\0\\0\\0\\1\\0/);
  assert.match(unreadableReasons(mirrored, CHECKS)[0], /\(prepare and predict leave such series out\)$/);
  const lenient = { ...CHECKS, series: { ...CHECKS.series, max_axis_turn_deg: 180 } }; // the number is the manifest's
  assert.equal(seriesProblem(mirrored, lenient), null);
});

test('pixel module: a missing or malformed rescale, slope <= 0, padding in soft tissue, oversized pixel data', () => {
  const base = [[0x0028, 0x0010, 'US', 2], [0x0028, 0x0011, 'US', 2], [0x0028, 0x0100, 'US', 16], [0x0028, 0x0101, 'US', 16], [0x0028, 0x0103, 'US', 1]];
  const raw = [0, 0, 0, 0, 0, 0, 0, 0];
  const file = (name, attributes, pixels = raw) => parseSlice(name, dicomFile('1.2.840.10008.1.2.1', [...base, ...attributes], { raw: pixels }));
  const slope = [0x0028, 0x1053, 'DS', '1'];
  const intercept = [0x0028, 0x1052, 'DS', '-1024'];
  const good = file('good.dcm', [intercept, slope]);
  assert.equal(pixelModuleProblem(good.module, CHECKS), null);
  const noIntercept = file('a.dcm', [slope]);
  assert.match(pixelModuleProblem(noIntercept.module, CHECKS), /^\(0028,1052\) Rescale Intercept is missing; it is required \(Type 1\)/);
  const grouped = unreadableReasons([noIntercept, good, file('b.dcm', [slope])], CHECKS);
  assert.equal(grouped.length, 1);
  assert.ok(grouped[0].startsWith('2 slices (a.dcm, b.dcm): (0028,1052) Rescale Intercept is missing'), grouped[0]);
  assert.match(pixelModuleProblem(file('c.dcm', [intercept, [0x0028, 0x1053, 'DS', '1\\2']]).module, CHECKS), /Rescale Slope is not one finite number/);
  assert.match(pixelModuleProblem(file('d.dcm', [intercept]).module, CHECKS), /Rescale Slope is missing/);
  for (const value of ['0', '-1']) {
    assert.match(pixelModuleProblem(file('e.dcm', [intercept, [0x0028, 0x1053, 'DS', value]]).module, CHECKS), /it must be > 0/);
  }
  // padding stored 1000 with intercept -1024: -24 HU, brain would become air
  const padded = file('f.dcm', [intercept, slope, [0x0028, 0x0120, 'US', 1000]]);
  assert.match(pixelModuleProblem(padded.module, CHECKS), /mark -24 HU as padding, inside the soft-tissue window -100\.\.100 HU/);
  assert.equal(pixelModuleProblem(file('g.dcm', [intercept, slope, [0x0028, 0x0120, 'US', 0xf830]]).module, CHECKS), null); // -2000
  const long = file('h.dcm', [intercept, slope], [...raw, 0, 0]);
  assert.match(pixelModuleProblem(long.module, CHECKS), /Pixel Data holds 10 bytes where .* = 8/);
  assert.equal(pixelModuleProblem(file('i.dcm', [intercept, slope], [...raw, 0]).module, CHECKS), null); // one pad byte
});

test('HU counts: the Python definition (rows every neighbour_row_step, pairs inside the body, across and down)', () => {
  const rule = CHECKS.hu;
  const rows = 2 * rule.neighbour_row_step + 1;
  const hu = new Float32Array(rows * 3).fill(-1024);
  hu.set([0, 10, -1024], 0); // row 0: one pair across (0, 10)
  hu.set([7, 8, 9], 3); // row 1: not counted across; down from row 0: (0, 7), (10, 8)
  hu.set([5000, 50, 2000], rule.neighbour_row_step * 3); // counted row: across (5000, 50), (50, 2000)
  const counts = huCounts(hu, rows, 3, rule);
  const sums = (pairs) => {
    const sum = (f) => pairs.reduce((t, [a, b]) => t + f(a, b), 0);
    return [pairs.length, sum((a) => a), sum((a, b) => b), sum((a) => a * a), sum((a, b) => b * b), sum((a, b) => a * b)];
  };
  assert.deepEqual([...counts], [
    rows * 3, rows * 3 - 8, 6, 1, ...sums([[0, 10], [5000, 50], [50, 2000]]), ...sums([[0, 7], [10, 8]]),
  ]);
  assert.equal(counts.length, CHECKS.hu.count_names.length);
  huCounts(hu, rows, 3, rule, counts); // adds
  assert.equal(counts[0], 2 * rows * 3);
});

test('HU plausibility: rows in a random order correlate across but not down; one scrambled slice is refused', () => {
  const rule = CHECKS.hu;
  const size = 128;
  const head = headSlice(size, 1);
  const rowsShuffled = new Float32Array(head.length);
  const order = Array.from({ length: size }, (_, r) => (r * 37) % size); // 37 is prime to 128: a permutation
  order.forEach((from, to) => rowsShuffled.set(head.subarray(from * size, (from + 1) * size), to * size));
  const counts = huCounts(rowsShuffled, size, size, rule);
  assert.ok(neighbourCorrelation(counts, rule) < rule.min_neighbour_correlation);
  assert.match(sliceStructureProblem(counts, rule), /^no image structure: neighbouring pixels inside the body correlate under 0\.25/);
  assert.equal(sliceStructureProblem(huCounts(head, size, size, rule), rule), null);
});

test('HU plausibility: a head passes; scrambled pixels, a wrong intercept, metal do not', () => {
  const rule = CHECKS.hu;
  const size = 128;
  const total = (slices) => slices.reduce((counts, hu) => huCounts(hu, size, size, rule, counts), new Float64Array(16));
  const head = [1, 2, 3].map((seed) => headSlice(size, seed));
  assert.equal(huProblem(total(head), rule), null);
  assert.ok(neighbourCorrelation(total(head), rule) > 0.9);
  // the same pixels in a scrambled order: every share passes, the correlation does not
  const scrambled = head.map((hu, k) => {
    const out = hu.slice();
    let state = 7 + k;
    for (let i = out.length - 1; i > 0; i--) {
      state = (state * 1103515245 + 12345) % 2147483648;
      const j = state % (i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  });
  assert.match(huProblem(total(scrambled), rule), /^no image structure: neighbouring pixels inside the body correlate -?0\.\d\d, under 0\.25/);
  const shifted = head.map((hu) => hu.map((v) => v + 1024)); // intercept 0 assumed for -1024: no air
  assert.match(huProblem(total(shifted), rule), /at least 1% air at or below -900 HU expected/);
  const metal = head.map((hu) => hu.map((v, i) => (i % 20 === 0 ? 4000 : v)));
  assert.match(huProblem(total(metal), rule), /at most 1% above 3000 HU expected/);
  assert.equal(neighbourCorrelation(huCounts(headSlice(8), 8, 8, rule), rule), null); // too few pairs
  assert.equal(huProblem(new Float64Array(16), rule), null); // nothing counted
});

test('series: thin slices and a field of view that is not a head reconstruction are not judged', () => {
  const at = (zs, extra) => zs.map((z, i) => fakeSlice(`s${i}`, z, extra));
  const routine = Array.from({ length: 32 }, (_, i) => 5 * i);
  assert.equal(seriesProblem(at(routine), CHECKS), null);
  assert.match(seriesProblem(at(Array.from({ length: 32 }, (_, i) => 0.6 * i), { sliceThickness: 0.6 }), CHECKS),
    /^thin slices: 0\.60 mm apart \(\(0020,0032\) Image Position\), under the 2 mm the model reads; send the routine/);
  assert.match(seriesProblem(at(routine, { sliceThickness: 1 }), CHECKS), /^thin slices: \(0018,0050\) Slice Thickness 1 mm, under the 2 mm/);
  const module = { ...fakeSlice('x', 0).module, rows: 256, columns: 256 };
  assert.equal(seriesProblem(at(routine, { module, pixelSpacing: [0.9, 0.9] }), CHECKS), null); // 230 mm
  assert.match(seriesProblem(at(routine, { module, pixelSpacing: [1.875, 1.875] }), CHECKS),
    /^field of view 480 x 480 mm \(Columns and Rows times \(0028,0030\) Pixel Spacing\), outside the 160-320 mm/);
  assert.match(seriesProblem(at(routine, { module, pixelSpacing: [0.5, 0.5] }), CHECKS), /^field of view 128 x 128 mm/);
});

test('series: (0018,0010) Contrast/Bolus Agent naming an agent -> UNREADABLE; words for none name none', () => {
  const rule = CHECKS.series;
  for (const none of [null, undefined, '', 'NONE', 'none', 'No contrast', 'Non-contrast', 'N/A', 'without', '0', '-']) {
    assert.equal(namesContrastAgent(none, rule), false, String(none));
  }
  for (const agent of ['Omnipaque 350', 'IOHEXOL', 'Visipaque', 'IV', 'YES', 'Contrast']) {
    assert.equal(namesContrastAgent(agent, rule), true, agent);
  }
  // parseSlice reads the tag: its text as written, null when absent
  const attributes = [[0x0028, 0x0010, 'US', 1], [0x0028, 0x0011, 'US', 1], [0x0028, 0x0100, 'US', 16], [0x0028, 0x0101, 'US', 16],
    [0x0028, 0x0103, 'US', 1], [0x0028, 0x1052, 'DS', '-1024'], [0x0028, 0x1053, 'DS', '1']];
  const file = (extra) => dicomFile('1.2.840.10008.1.2.1', [...extra, ...attributes], { raw: [0, 0] });
  assert.equal(parseSlice('a.dcm', file([[0x0018, 0x0010, 'LO', 'Omnipaque 350']])).contrastAgent, 'Omnipaque 350');
  assert.equal(parseSlice('b.dcm', file([])).contrastAgent, null);
  const series = (agents, extra) => agents.map((agent, i) => fakeSlice(`s${i}`, 5 * i, { contrastAgent: agent, ...extra }));
  assert.equal(seriesProblem(series([null, 'No contrast', 'N/A']), CHECKS), null);
  const enhanced = series([null, 'Omnipaque 350', 'N/A']);
  assert.equal(seriesProblem(enhanced, CHECKS), 'contrast-enhanced: (0018,0010) Contrast/Bolus Agent names an agent on 1 of 3 ' +
    `slices; contrast is as bright as fresh blood and the model was trained on non-contrast head CT; ${rule.contrast_instead}`);
  assert.match(unreadableReasons(enhanced, CHECKS)[0], /^contrast-enhanced: .*\(prepare and predict leave such series out\)$/);
  // ich-edge's order: after several patients, before the tilt rule
  const two = series(['IOHEXOL', 'IOHEXOL', 'IOHEXOL']);
  two[1] = { ...two[1], patientId: 'P2' };
  assert.match(seriesProblem(two, CHECKS), /^its slices carry 2 different \(0010,0020\) Patient IDs/);
  assert.match(seriesProblem(series(['IOHEXOL', null, null], { orientation: [0, 1, 0, 0, 0, -1] }), CHECKS), /^contrast-enhanced: /);
  // the flag and the words are the manifest's; a manifest without them (made before the rule) judges nothing
  assert.equal(seriesProblem(enhanced, { ...CHECKS, series: { ...rule, drop_contrast: false } }), null);
  assert.equal(seriesProblem(enhanced, { ...CHECKS, series: { ...rule, no_contrast_words: [...rule.no_contrast_words, 'OMNIPAQUE350'] } }), null);
  const { drop_contrast: _dropped, ...older } = rule;
  assert.equal(inputChecksOf({ input_checks: { ...CHECKS, series: older } }), null);
});

test('coverage: too few slices, too short, a gap, no positions -> a negative is INCOMPLETE', () => {
  const windowSlices = 24;
  const at = (zs, extra) => zs.map((z, i) => fakeSlice(`s${i}`, z, extra));
  const full = seriesCoverage(at(Array.from({ length: 32 }, (_, i) => 5 * i)), windowSlices, CHECKS);
  assert.equal(full.complete, true);
  assert.equal(full.extentMm, 160);
  const three = seriesCoverage(at([10, 15, 20]), windowSlices, CHECKS);
  assert.deepEqual(three.reasons, [
    '3 slices, fewer than one window of the model (24)',
    'covers 15 mm along the slice axis, under the 100 mm a negative needs (a head is about 140-160 mm): only part of the head was seen',
  ]);
  const zs = Array.from({ length: 32 }, (_, i) => 5 * i).filter((z) => z < 50 || z > 65);
  const gap = seriesCoverage(at(zs), windowSlices, CHECKS);
  assert.deepEqual(gap.reasons, ['a 25.0 mm gap between slices 10 and 11 (median spacing 5.0 mm): about 4 slices missing']);
  const loose = { ...CHECKS, coverage: { ...CHECKS.coverage, gap_factor: 5 } }; // the number is the manifest's
  assert.equal(seriesCoverage(at(zs), windowSlices, loose).complete, true);
  const one = seriesCoverage(at([0]), 1, CHECKS);
  assert.equal(one.extentMm, 5); // its Slice Thickness
  const sparse = seriesCoverage(at(Array.from({ length: 11 }, (_, i) => 15 * i)), 4, CHECKS);
  assert.deepEqual(sparse.reasons, ['slices 15.0 mm apart, more than 10 mm: the head between them was not seen']);
  assert.equal(seriesCoverage(at(Array.from({ length: 16 }, (_, i) => 10 * i)), 4, CHECKS).complete, true);
  const unknown = seriesCoverage(at(Array.from({ length: 30 }, (_, i) => i), { position: null }), windowSlices, CHECKS);
  assert.deepEqual(unknown.reasons, ['slice positions (0020,0032) missing: how much of the head the series covers is unknown']);
  assert.equal(verdictOf([false, false], three), 'INCOMPLETE');
  assert.equal(verdictOf([false, true], three), 'POSITIVE');
  assert.equal(verdictOf([false, false], full), 'NEGATIVE');
});
