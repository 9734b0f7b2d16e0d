// Unit tests of the page's DOM-free modules, with Node's test runner: node --test tests/
// (run by tests/apps/test_web_demo.py). The browser test checks the whole page.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import { decodeRle16Mapped, decodeRleFrame, decodeRlePlanes, RleError } from '../src/rle.js';
import { areaResize, roundHalfEven, windowsToUint8 } from '../src/preprocess.js';
import { classifyStudy, studyProbabilities, windowStarts } from '../src/sequence.js';

const require = createRequire(import.meta.url);
globalThis.dicomParser = require('dicom-parser');
const { DicomError, asStoredForTest, parseSlice, sliceHu, sortSlices, storedToHu, storedValues } = await import('../src/dicom.js');

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
