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
  const planes = decodeRlePlanes(frame, rows, columns, bitsAllocated, samplesPerPixel);
  const bytesPerSample = bitsAllocated / 8;
  const numPixels = rows * columns;
  const stride = planes.length;
  const out = new Uint8Array(numPixels * stride);
  planes.forEach((plane, s) => {
    // Segment order: sample by sample, and within a sample the most significant byte first.
    const sample = Math.floor(s / bytesPerSample);
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample); // little-endian position
    const base = sample * bytesPerSample + byteInSample;
    for (let p = 0; p < numPixels; p++) out[p * stride + base] = plane[p];
  });
  return out;
}

/** Byte planes reused from frame to frame (a slice's planes are read before the next is decoded). */
const scratchPlanes = [];

function scratchPlane(s, numPixels) {
  if (!scratchPlanes[s] || scratchPlanes[s].length < numPixels) scratchPlanes[s] = new Uint8Array(numPixels);
  return scratchPlanes[s].length === numPixels ? scratchPlanes[s] : scratchPlanes[s].subarray(0, numPixels);
}

/**
 * Decode one RLE Lossless frame to its byte planes, in segment order: for each sample, the
 * most significant byte plane first (a 16-bit sample: [high bytes, low bytes]). The caller
 * assembles the samples from the planes in one pass (dicom.js storedValues), which is much
 * cheaper than interleaving the bytes (decodeRleFrame) and reading them back as samples.
 *
 * The planes are scratch buffers shared by every call: read them before the next call.
 * Same arguments and the same RleError messages as decodeRleFrame.
 *
 * @returns {Uint8Array[]} bitsAllocated / 8 * samplesPerPixel planes of rows * columns bytes
 */
export function decodeRlePlanes(frame, rows, columns, bitsAllocated, samplesPerPixel = 1) {
  const planes = [];
  decodeSegments(frame, rows, columns, bitsAllocated, samplesPerPixel, (s, start, end) => {
    const plane = scratchPlane(s, rows * columns);
    planes.push(plane);
    return unpackBits(frame, start, end, plane);
  });
  return planes;
}

/**
 * Decode an RLE Lossless frame of 16-bit samples, one per pixel, through a lookup table:
 * out[p] = table[sample & mask] (dicom.js sliceHu: the table gives each sample's HU). The
 * high byte plane is decoded first; the low one is then decoded straight into `out`, each
 * byte joined to its high byte and looked up as it comes, so the low plane and the samples
 * are never stored. Same checks and RleError messages as decodeRleFrame(frame, rows,
 * columns, 16, 1).
 *
 * @param {Float32Array} table values by sample bit pattern (masked)
 * @param {number} mask applied to each sample before the lookup (table.length - 1)
 * @param {Float32Array} out rows * columns values, filled
 */
export function decodeRle16Mapped(frame, rows, columns, table, mask, out) {
  const high = scratchPlane(0, rows * columns);
  decodeSegments(frame, rows, columns, 16, 1, (s, start, end) =>
    s === 0 ? unpackBits(frame, start, end, high) : unpackBitsMapped(frame, start, end, high, table, mask, out),
  );
}

/**
 * Check the frame's header and decode its segments in order with decodeSegment(s, start,
 * end), which returns how many pixels segment s filled; throws RleError on anything wrong.
 */
function decodeSegments(frame, rows, columns, bitsAllocated, samplesPerPixel, decodeSegment) {
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
  for (let s = 0; s < numSegments; s++) {
    const start = offsets[s];
    const end = s + 1 < numSegments ? offsets[s + 1] : frame.length;
    if (start < 64 || end > frame.length || start > end) {
      throw new RleError(`RLE segment ${s + 1} lies outside the frame (offsets ${start}..${end} of ${frame.length} bytes)`);
    }
    const produced = decodeSegment(s, start, end);
    if (produced < numPixels) {
      throw new RleError(`RLE segment ${s + 1} decodes to ${produced} bytes, ${numPixels} expected: the data is truncated`);
    }
  }
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
      // replicate run: 257 - n copies of the next byte (n as int8 is n - 256); long ones (the
      // high bytes of CT: air, soft tissue) with fill(), short ones in a loop (fewer calls)
      if (pos >= end) break;
      const value = frame[pos++];
      const stop = Math.min(written + 257 - n, size);
      if (stop - written >= 32) {
        plane.fill(value, written, stop);
        written = stop;
      } else {
        while (written < stop) plane[written++] = value;
      }
    }
    // n === 128 (-128): no operation
  }
  return written;
}

/**
 * unpackBits for the low byte plane of 16-bit samples: writes out[p] = table[((high[p] << 8)
 * | low byte) & mask] instead of the byte. The same runs, limits and return value. Its own
 * copy of the run loop on purpose: unpackBits with a per-byte callback would cost about what
 * fusing the table lookup into the decoding saves.
 */
function unpackBitsMapped(frame, start, end, high, table, mask, out) {
  const size = out.length;
  let pos = start;
  let written = 0;
  while (pos < end && written < size) {
    const n = frame[pos++];
    if (n < 128) {
      const take = Math.min(n + 1, end - pos, size - written);
      for (let k = 0; k < take; k++, written++) out[written] = table[((high[written] << 8) | frame[pos + k]) & mask];
      pos += n + 1;
    } else if (n > 128) {
      if (pos >= end) break;
      const value = frame[pos++];
      const stop = Math.min(written + 257 - n, size);
      for (; written < stop; written++) out[written] = table[((high[written] << 8) | value) & mask];
    }
  }
  return written;
}
