// Reading, decoding and preprocessing a series off the page's thread.
//
// prepareSeries() is the one pipeline: read and parse every file, keep one series, skip the
// slices off its orientation, sort it, check it (src/checks.js), then decode and preprocess
// slice after slice. It yields messages:
//   {type: 'series', seriesUid, sortMethod, numFiles, slices: [{name, sopInstanceUid,
//    seriesDescription, transferSyntax, rows, columns}], problems, unreadable}
//        unreadable: why the series must not be judged (the series and pixel-module rules of
//        manifest.input_checks); when not empty nothing is decoded and nothing else follows
//   {type: 'slice', index, image (uint8 size*size*3), ms, checkMs}   one per usable slice, in order
//        checkMs: the part of ms spent on the HU counts of the plausibility rule
//   {type: 'problem', index, problem}                        a slice that was dropped
//   {type: 'checks', counts, huProblem, coverage}            last: the HU counts summed over the
//        decoded slices, why they are not a head's (or null), the coverage of those slices
// A DicomError that ends the analysis is thrown (in the worker: posted as an error message).
//
// src/prepare_worker.js runs it in a Web Worker, so the page's thread only runs the model
// (slice i is encoded while the worker decodes slice i + 1); where a worker cannot start, the
// page runs the same generator itself (SeriesPreparer below).

import { DicomError, parseSlice, pickSeries, sliceHu, sortSlices } from './dicom.js';
import { preprocessSlice } from './preprocess.js';
import {
  COUNT_NAMES, huCounts, huProblem, keepSeriesOrientation, noStructureReason, seriesCoverage, sliceStructureProblem,
  unreadableReasons,
} from './checks.js';

/** Parse every file; one series, sorted. Throws DicomError when no file is a usable slice. */
async function readSeries(files, inputChecks) {
  const problems = [];
  const parsed = [];
  // Every file's read is started at once, so the browser reads them concurrently instead of
  // one after another (each waiting for the previous parse); they are parsed in file order as
  // they arrive, which keeps the order of the problems. Each slice keeps its bytes until it is
  // decoded anyway, so the peak memory is about the same. A read that fails is thrown as
  // before; the catch() below only keeps a failing read that is never reached (an earlier
  // read threw first) from being reported as an unhandled rejection.
  const reads = files.map(({ file }) => file.arrayBuffer());
  for (const read of reads) read.catch(() => {});
  for (let i = 0; i < files.length; i++) {
    const { name } = files[i];
    try {
      parsed.push(parseSlice(name, await reads[i]));
    } catch (err) {
      if (!(err instanceof DicomError)) throw err;
      problems.push(`${err.message}; skipped`);
    }
  }
  if (!parsed.length) {
    const first = problems[0].replace(/; skipped$/, '');
    throw new DicomError(
      files.length === 1
        ? `Cannot read this file as a CT slice. ${first}.`
        : `None of the ${files.length} files is a usable CT slice (first problem: ${first}).`,
    );
  }
  const series = pickSeries(parsed);
  const oriented = inputChecks ? keepSeriesOrientation(series.slices, inputChecks) : { kept: series.slices, problems: [] };
  const order = sortSlices(oriented.kept);
  problems.push(...series.problems, ...oriented.problems, ...order.problems);
  return { series, order, problems };
}

/**
 * The pipeline (see the top of this file): files [{file, name}], the manifest's preprocessing,
 * checks {input: manifest.input_checks or null (then nothing is judged), windowSlices}.
 */
export async function* prepareSeries(files, rules, checks) {
  const inputChecks = checks.input;
  const { series, order, problems } = await readSeries(files, inputChecks);
  const slices = order.slices;
  const unreadable = unreadableReasons(slices, inputChecks);
  yield {
    type: 'series',
    seriesUid: series.seriesUid,
    sortMethod: order.method,
    numFiles: files.length,
    problems,
    slices: slices.map((s) => ({
      name: s.name,
      sopInstanceUid: s.sopInstanceUid,
      seriesDescription: s.seriesDescription,
      transferSyntax: s.transferSyntax,
      rows: s.module.rows,
      columns: s.module.columns,
    })),
    unreadable,
  };
  if (unreadable.length) return; // not judged: nothing is decoded
  const counts = new Float64Array(COUNT_NAMES.length);
  const sliceCounts = new Float64Array(COUNT_NAMES.length);
  const noStructure = []; // slices whose own pixels do not correlate: the series is UNREADABLE
  const decoded = [];
  for (let index = 0; index < slices.length; index++) {
    const slice = slices[index];
    const start = performance.now();
    try {
      const { rows, columns } = slice.module;
      const hu = sliceHu(slice, rules.air_hu); // storedToHu(storedValues(slice)), fused
      const t = performance.now();
      sliceCounts.fill(0);
      huCounts(hu, rows, columns, inputChecks.hu, sliceCounts); // the HU the model's input is made from
      if (sliceStructureProblem(sliceCounts, inputChecks.hu)) noStructure.push(slice.name);
      else for (let k = 0; k < counts.length; k++) counts[k] += sliceCounts[k];
      const checkMs = performance.now() - t;
      const image = preprocessSlice(hu, rows, columns, rules);
      slice.bytes = null; // the file's bytes are not needed any more
      decoded.push(slice);
      yield { type: 'slice', index, image, ms: performance.now() - start, checkMs };
    } catch (err) {
      if (!(err instanceof DicomError)) throw err;
      yield { type: 'problem', index, problem: `${err.message}; slice dropped` };
    }
  }
  const coverage = seriesCoverage(decoded, checks.windowSlices, inputChecks);
  const problem = noStructure.length ? noStructureReason(noStructure, inputChecks.hu) : huProblem(counts, inputChecks.hu);
  yield { type: 'checks', counts: Array.from(counts), huProblem: problem, coverage };
}

/** An error that crossed from the worker: a DicomError again where it was one. */
function revive(data) {
  const Kind = data.dicom ? DicomError : Error;
  return new Kind(data.message);
}

/**
 * Runs prepareSeries() in src/prepare_worker.js, or on this thread where no worker starts.
 * One series at a time (the page analyses one at a time).
 */
export class SeriesPreparer {
  /** @param {boolean} useWorker false: run on the page's thread (?worker=0, for comparisons) */
  constructor(useWorker = true) {
    this.worker = null;
    this.workerProblem = useWorker ? null : 'turned off (?worker=0)';
    this.runs = 0; // messages carry their run's id: a run the page gave up on is ignored
    if (!useWorker) return;
    try {
      this.worker = new Worker(new URL('./prepare_worker.js', import.meta.url), { type: 'module' });
      this.worker.addEventListener('error', (event) => {
        this.workerProblem = event.message || 'the worker failed to start';
      });
    } catch (err) {
      this.workerProblem = String(err && err.message ? err.message : err);
    }
  }

  /** Where decoding runs, for the page: "a Web Worker" or "the page's thread". */
  get where() {
    return this.worker && !this.workerProblem ? 'a Web Worker' : "the page's thread";
  }

  /** The pipeline's messages, as an async iterator. */
  run(files, rules, checks) {
    if (!this.worker || this.workerProblem) return prepareSeries(files, rules, checks);
    return this._fromWorker(files, rules, checks);
  }

  async *_fromWorker(files, rules, checks) {
    const id = ++this.runs;
    const queue = [];
    let wake = null;
    const onMessage = (event) => {
      if (event.data.id !== id) return;
      queue.push(event.data);
      if (wake) wake();
    };
    const onError = (event) => {
      queue.push({ type: 'error', dicom: false, message: `the decoding worker failed: ${event.message || 'unknown error'}` });
      if (wake) wake();
    };
    this.worker.addEventListener('message', onMessage);
    this.worker.addEventListener('error', onError);
    try {
      this.worker.postMessage({ id, files, rules, checks });
      for (;;) {
        if (!queue.length) await new Promise((resolve) => { wake = resolve; });
        wake = null;
        const message = queue.shift();
        if (message.type === 'done') return;
        if (message.type === 'error') throw revive(message);
        yield message;
      }
    } finally {
      this.worker.removeEventListener('message', onMessage);
      this.worker.removeEventListener('error', onError);
    }
  }
}
