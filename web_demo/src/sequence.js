// The sequence rule of the app contract (manifest.sequence, ich_edge/sequence.py):
// windows of window_slices consecutive slices at 0, stride, 2*stride, ... while one fits, plus
// one last window ending at the last slice; a short study is one window padded at the end
// (padding outputs dropped); a slice's probability is the mean over the windows covering it;
// the study's probability per label is the max over its slices.

/** First slice of each window for a study of numSlices slices. */
export function windowStarts(numSlices, windowSlices, strideSlices) {
  if (numSlices < 1) throw new Error('a study needs at least one slice');
  if (numSlices <= windowSlices) return [0];
  const starts = [];
  for (let s = 0; s <= numSlices - windowSlices; s += strideSlices) starts.push(s);
  if (starts[starts.length - 1] !== numSlices - windowSlices) starts.push(numSlices - windowSlices);
  return starts;
}

/**
 * Run the classifier over the windows and stitch: mean over covering windows (float64
 * sums, one float32 rounding at the end, as ich_edge.sequence.stitch).
 *
 * @param {Float32Array[]} features per slice, each featureDim values
 * @param {Float32Array|null} blank features of a blank (all-zero) image, used for padding
 * @param {(window: Float32Array) => Promise<Float32Array>} classify (T*F) -> (T*L)
 * @returns {Promise<{slices: Float32Array[], starts: number[]}>} per-slice probabilities
 */
export async function classifyStudy(features, blank, classify, windowSlices, strideSlices, numLabels) {
  const n = features.length;
  const featureDim = features[0].length;
  const starts = windowStarts(n, windowSlices, strideSlices);
  const total = Array.from({ length: n }, () => new Float64Array(numLabels));
  const count = new Float64Array(n);
  for (const start of starts) {
    const window = new Float32Array(windowSlices * featureDim);
    for (let t = 0; t < windowSlices; t++) {
      const index = start + t;
      const row = index < n ? features[index] : blank;
      if (!row) throw new Error('a short study needs the features of a blank image for padding');
      window.set(row, t * featureDim);
    }
    const probabilities = await classify(window);
    const valid = Math.min(windowSlices, n - start);
    for (let t = 0; t < valid; t++) {
      for (let l = 0; l < numLabels; l++) total[start + t][l] += probabilities[t * numLabels + l];
      count[start + t] += 1;
    }
  }
  const slices = total.map((row, i) => Float32Array.from(row, (v) => v / count[i]));
  return { slices, starts };
}

/** Study probability per label: the max over slices. */
export function studyProbabilities(sliceProbabilities) {
  const numLabels = sliceProbabilities[0].length;
  const study = new Float32Array(numLabels).fill(-Infinity);
  for (const row of sliceProbabilities) for (let l = 0; l < numLabels; l++) study[l] = Math.max(study[l], row[l]);
  return study;
}
