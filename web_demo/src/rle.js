// RLE Lossless (1.2.840.10008.1.2.5) decoder, DICOM PS3.5 Annex G.
//
// One frame is a 64-byte header (uint32 little endian: the number of segments, then 15
// segment offsets from the start of the frame) followed by the segments. Each segment is one
// byte plane compressed with PackBits (G.3.1): a header byte n, as int8, says
//   0..127   copy the next n + 1 bytes literally,
//   -127..-1 repeat the next byte -n + 1 times,
//   -128     nothing (skip).
// Samples wider than one byte are split into byte planes, the most significant byte first
// (G.2): a 16-bit sample is two segments, high bytes then low bytes; a 32-bit one four.
// Plain functions, no DOM: importable from a worker or Node.

export class RleError extends Error {}

/**
 * Decode one RLE Lossless frame to native little-endian pixel bytes.
 *
 * @param {Uint8Array} frame the frame's bytes (all fragments of the frame, concatenated)
 * @param {number} rows (0028,0010) Rows
 * @param {number} columns (0028,0011) Columns
 * @param {number} bitsAllocated (0028,0100) Bits Allocated: 8, 16 or 32
 * @param {number} samplesPerPixel (0028,0002) Samples per Pixel (1 for CT)
 * @returns {Uint8Array} rows * columns * samplesPerPixel * bitsAllocated / 8 bytes, each
 *     sample little endian, samples interleaved (pixel by pixel) as in native data
 */
export function decodeRleFrame(frame, rows, columns, bitsAllocated, samplesPerPixel = 1) {
  if (bitsAllocated % 8 !== 0 || bitsAllocated < 8 || bitsAllocated > 32) {
    throw new RleError(`RLE Lossless with Bits Allocated ${bitsAllocated} is not supported (8, 16 or 32)`);
  }
  if (frame.length < 64) {
    throw new RleError(`RLE frame too short: ${frame.length} bytes, the RLE header alone is 64`);
  }
  const bytesPerSample = bitsAllocated / 8;
  const expectedSegments = bytesPerSample * samplesPerPixel;
  const header = new DataView(frame.buffer, frame.byteOffset, 64);
  const numSegments = header.getUint32(0, true);
  if (numSegments !== expectedSegments) {
    throw new RleError(
      `RLE header lists ${numSegments} segments; ${samplesPerPixel} sample(s) of ${bitsAllocated} bits need ${expectedSegments}`,
    );
  }
  const offsets = [];
  for (let s = 0; s < numSegments; s++) offsets.push(header.getUint32(4 + 4 * s, true));
  const numPixels = rows * columns;
  const out = new Uint8Array(numPixels * expectedSegments);
  const plane = new Uint8Array(numPixels);
  for (let s = 0; s < numSegments; s++) {
    const start = offsets[s];
    const end = s + 1 < numSegments ? offsets[s + 1] : frame.length;
    if (start < 64 || end > frame.length || start > end) {
      throw new RleError(`RLE segment ${s + 1} lies outside the frame (offsets ${start}..${end} of ${frame.length} bytes)`);
    }
    const produced = unpackBits(frame, start, end, plane);
    if (produced < numPixels) {
      throw new RleError(`RLE segment ${s + 1} decodes to ${produced} bytes, ${numPixels} expected: the data is truncated`);
    }
    // Segment order: sample by sample, and within a sample the most significant byte first.
    const sample = Math.floor(s / bytesPerSample);
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample); // little-endian position
    const stride = expectedSegments;
    const base = sample * bytesPerSample + byteInSample;
    for (let p = 0; p < numPixels; p++) out[p * stride + base] = plane[p];
  }
  return out;
}

/**
 * PackBits-decode frame[start:end] into `plane`; returns the number of bytes written.
 * Output beyond plane.length is dropped (encoders may pad a segment to an even length).
 */
function unpackBits(frame, start, end, plane) {
  const size = plane.length;
  let pos = start;
  let written = 0;
  while (pos < end && written < size) {
    const n = frame[pos++];
    if (n < 128) {
      // literal run of n + 1 bytes (plain loops: subarray() per short run costs more)
      const take = Math.min(n + 1, end - pos, size - written);
      for (let k = 0; k < take; k++) plane[written++] = frame[pos + k];
      pos += n + 1;
    } else if (n > 128) {
      // replicate run: 257 - n copies of the next byte (n as int8 is n - 256)
      if (pos >= end) break;
      const value = frame[pos++];
      const stop = Math.min(written + 257 - n, size);
      while (written < stop) plane[written++] = value;
    }
    // n === 128 (-128): no operation
  }
  return written;
}
