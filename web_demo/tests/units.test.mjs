// Unit tests of the page's DOM-free modules, with Node's test runner: node --test tests/
// (run by tests/apps/test_web_demo.py). The browser test checks the whole page.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import { decodeRleFrame, RleError } from '../src/rle.js';
import { areaResize, roundHalfEven, windowsToUint8 } from '../src/preprocess.js';
import { classifyStudy, studyProbabilities, windowStarts } from '../src/sequence.js';

const require = createRequire(import.meta.url);
globalThis.dicomParser = require('dicom-parser');
const { asStoredForTest, sortSlices, storedToHu } = await import('../src/dicom.js');

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

test('round half to even as numpy rint', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 254.5, 2.4999, 2.5001].map(roundHalfEven), [0, 2, 2, 4, 254, 2, 3]);
});

test('windows: float32 arithmetic and rounding (a value numpy rounds to 128, not 127)', () => {
  // (40 - 0) * float32(1/80) = 0.5 in float32; 0.5 * 255 = 127.5 -> 128 (half to even)
  const out = windowsToUint8(Float32Array.from([40, -1024, 3000]), [{ channel: 0, low_hu: 0, scale_per_hu: 0.012500000186264515 }]);
  assert.deepEqual([...out], [128, 0, 255]);
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
  assert.equal(asStoredForTest(63536, 16, true), -2000); // SS -2000 read as US
  assert.equal(asStoredForTest(63536, 12, true), -2000);
});

test('slices sort by position along the normal, not by instance number', () => {
  const slice = (name, z, n) => ({ name, position: [0, 0, z], orientation: [1, 0, 0, 0, 1, 0], instanceNumber: n });
  const { slices, method } = sortSlices([slice('a', 10, 1), slice('b', -5, 2), slice('c', 3, 3)]);
  assert.equal(method, 'position');
  assert.deepEqual(slices.map((s) => s.name), ['b', 'c', 'a']);
  // feet-first orientation (column cosine flipped): the normal points down, order reverses
  const flipped = [10, -5, 3].map((z, i) => ({ ...slice(String(i), z, i), orientation: [1, 0, 0, 0, -1, 0] }));
  assert.deepEqual(sortSlices(flipped).slices.map((s) => s.position[2]), [10, 3, -5]);
});
