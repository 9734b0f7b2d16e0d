// The page: open a CT series, preprocess it as manifest.json says, run model.tflite with
// LiteRT.js, show the triage. Everything runs in this browser; nothing is uploaded.
//
// URL parameters: ?assets=URL (the app-assets folder, default ../android_demo_assets/),
// ?runtime=wasm|webgpu|auto (default wasm: the CPU kernels the bounds hold for), ?threads=N (CPU threads, default every core), ?worker=0 (decode
// on this thread, for comparisons). window.ichEdge
// exposes the last result (uint8 images, probabilities, timings) for tests and benchmarks.
//
// Threads: the page makes itself cross-origin isolated (src/isolation.js, sw.js) so LiteRT.js
// can run its threaded wasm build; files are read, decoded and preprocessed in a Web Worker
// (src/prepare.js) while this thread runs the model, slice by slice.
//
// Input checks (src/checks.js, manifest.input_checks): a series the model cannot have understood
// is UNREADABLE (not judged, no probabilities; the reasons say how to fix the export), and a
// negative that does not cover enough of the head is INCOMPLETE, as ich-edge predict does. The
// verdict is window.ichEdge.result.verdict; an UNREADABLE result has result.unreadable (reasons)
// and no probabilities. Assets whose manifest has no input_checks judge nothing (every series is
// UNREADABLE, and the model status says why): a page that cannot check its input must not answer.

import { inputChecksOf, missingChecksReason, verdictOf } from './checks.js';
import { DicomError } from './dicom.js';
import { ensureIsolation, isolationProblem } from './isolation.js';
import { IchEdgeModel, sha256Hex, webGpuAdapter } from './model.js';
import { SeriesPreparer } from './prepare.js';
import { toModelInput } from './preprocess.js';
import { classifyStudy, studyProbabilities } from './sequence.js';

const params = new URLSearchParams(location.search);
const ASSETS = new URL(params.get('assets') || '../android_demo_assets/', location.href);
const WASM_DIR = new URL('vendor/wasm/', location.href).href;
const $ = (id) => document.getElementById(id);

const state = {
  manifest: null,
  modelBytes: null,
  model: null,
  modelPromise: null,
  runtime: null, // {accelerator, label, note, adapter, threads, build}
  preparer: null, // SeriesPreparer: decoding and preprocessing in a Web Worker
  busy: false,
  selected: 0,
  result: null,
};

/** Test and benchmark hook: read-only view of what the page did. */
const hook = {
  runs: 0, // analyses finished (result or error)
  result: null,
  error: null,
  modelReady: false,
  modelError: null,
  analyzeFiles: (files) => analyzeFiles(files),
};
window.ichEdge = hook;

// --- small helpers ---------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key === 'style') node.style.cssText = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function progress(fraction, text) {
  const box = $('progress');
  box.hidden = fraction === null;
  if (fraction !== null) {
    box.querySelector('.bar').style.width = `${Math.round(fraction * 100)}%`;
    box.querySelector('.text').textContent = text;
  }
}

/** Let the page repaint during long work (no setTimeout clamping). */
function breathe() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

const fmt = (p) => p.toFixed(3);
const ms = (t) => (t >= 100 ? `${Math.round(t)} ms` : `${t.toFixed(1)} ms`);

// --- the model ---------------------------------------------------------------------------------

async function fetchOk(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error(`cannot fetch ${what} from ${url} (${err.message}); serve the repository root over http, see web_demo/README.md`);
  }
  if (!response.ok) throw new Error(`cannot fetch ${what}: ${url} answered ${response.status}; serve the repository root, see web_demo/README.md`);
  return response;
}

async function loadAssets() {
  state.manifest = await (await fetchOk(new URL('manifest.json', ASSETS), 'manifest.json')).json();
  const bytes = new Uint8Array(await (await fetchOk(new URL(state.manifest.model, ASSETS), 'model.tflite')).arrayBuffer());
  const digest = await sha256Hex(bytes);
  if (digest !== null && digest !== state.manifest.sha256) {
    throw new Error(`model.tflite (sha256 ${digest.slice(0, 12)}…) is not the model manifest.json describes (${state.manifest.sha256.slice(0, 12)}…); regenerate the assets with ich-edge assets`);
  }
  state.modelBytes = bytes;
  state.shaChecked = digest !== null;
  if (state.manifest.intended_use) $('disclaimer').textContent = `${capitalize(state.manifest.intended_use)}. Nothing leaves this browser.`;
}

function capitalize(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

async function compileModel(choice) {
  const adapter = choice === 'wasm' ? null : await webGpuAdapter();
  let accelerator = choice === 'auto' ? (adapter !== null ? 'webgpu' : 'wasm') : choice;
  let note = '';
  if (accelerator === 'webgpu' && adapter === null) {
    accelerator = 'wasm';
    note = 'WebGPU is not available in this browser; ';
  }
  try {
    state.model = await IchEdgeModel.load({ wasmDir: WASM_DIR, modelBytes: state.modelBytes, manifest: state.manifest, accelerator });
  } catch (err) {
    if (accelerator !== 'webgpu') throw err;
    note = `WebGPU failed (${String(err.message || err).slice(0, 120)}); `;
    accelerator = 'wasm';
    state.model = await IchEdgeModel.load({ wasmDir: WASM_DIR, modelBytes: state.modelBytes, manifest: state.manifest, accelerator });
  }
  const { threads, build } = state.model;
  let label = `CPU (wasm, XNNPack, ${threads} thread${threads === 1 ? '' : 's'}`;
  if (build !== 'threads') label += `: ${isolationProblem() || 'this browser has no threaded wasm (relaxed SIMD)'}`;
  label += ')';
  if (accelerator === 'webgpu') {
    label = `WebGPU${adapter ? ` (${adapter})` : ''}${state.model.fullyAccelerated ? '' : ', some ops on the CPU'}` +
      '; not the kernels the on-device bounds were measured on: check a result near a threshold on the CPU';
  }
  state.runtime = { accelerator, label, note, adapter: accelerator === 'webgpu' ? adapter : null, threads, build };
}

function explainModelError(err) {
  const text = String(err && err.message ? err.message : err);
  if (/variable tensor/i.test(text)) {
    return `${text}\nThis model.tflite keeps LSTM state in variable tensors, which LiteRT.js 2.x does not run: regenerate the assets with a stateless classify signature.`;
  }
  return text;
}

function startModel(choice) {
  hook.modelReady = false;
  hook.modelError = null;
  $('model-status').textContent = 'loading the model…';
  state.modelPromise = (async () => {
    const t0 = performance.now();
    if (!state.modelBytes) await loadAssets();
    if (state.model) state.model.delete();
    state.model = null;
    await compileModel(choice);
    const loadMs = performance.now() - t0;
    const m = state.manifest;
    $('model-status').textContent =
      `model ready: ${m.precision}, ${(m.size_bytes / 1e6).toFixed(2)} MB${state.shaChecked ? ', SHA-256 checked' : ''}; ` +
      `${state.runtime.note}runtime ${state.runtime.label}; loaded in ${ms(loadMs)}`;
    hook.inputChecks = inputChecksOf(m) !== null;
    $('checks-warning').hidden = hook.inputChecks;
    if (!hook.inputChecks) $('checks-warning').textContent = `No series will be judged: ${missingChecksReason()}.`;
    hook.modelReady = true;
    hook.modelLoadMs = loadMs;
    keepOfflineCopy();
    hook.runtime = state.runtime.accelerator;
    hook.adapter = state.runtime.adapter;
    hook.threads = state.runtime.threads;
    hook.build = state.runtime.build;
    hook.isolated = Boolean(globalThis.crossOriginIsolated);
    hook.decoding = state.preparer.where;
  })().catch((err) => {
    hook.modelError = explainModelError(err);
    $('model-status').textContent = 'the model did not load';
    showError(`The model could not be loaded: ${hook.modelError}`);
    throw err;
  });
  state.modelPromise.catch(() => {});
  return state.modelPromise;
}

/** Have the service worker (sw.js) store what the page fetched, for use without a network. */
async function keepOfflineCopy() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  try {
    await navigator.serviceWorker.register('sw.js');
    const registration = await navigator.serviceWorker.ready;
    const urls = [location.href, ...performance.getEntriesByType('resource').map((entry) => entry.name)];
    const reply = new Promise((resolve) => {
      navigator.serviceWorker.addEventListener('message', (event) => {
        if (event.data && 'cached' in event.data) resolve(event.data.cached);
      });
    });
    registration.active.postMessage({ cache: [...new Set(urls)] });
    hook.offlineFiles = await reply;
    hook.offlineReady = true;
    $('offline').textContent = '; works offline from now on in this browser';
  } catch (err) {
    hook.offlineError = String(err && err.message ? err.message : err);
  }
}

// --- reading files -----------------------------------------------------------------------------

/** Files of a drop, folders included (recursively). */
async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files];
  const files = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      files.push({ file, name: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const entry of entries) await walk(entry, '');
  return files;
}

function nameOf(item) {
  if (item.name && item.file) return item.name;
  return item.webkitRelativePath || item.name;
}

// --- the analysis -----------------------------------------------------------------------------

async function analyzeFiles(items) {
  if (state.busy) {
    showError('Still working on the previous series; wait for it to finish.');
    return;
  }
  state.busy = true;
  clearError();
  hook.error = null;
  try {
    progress(0, 'waiting for the model…');
    await state.modelPromise;
    const result = await analyze(items);
    state.result = result;
    hook.result = result;
    render(result);
  } catch (err) {
    const message = err instanceof DicomError ? err.message : `Something went wrong: ${err && err.message ? err.message : err}`;
    hook.error = message;
    showError(message);
    if (!(err instanceof DicomError)) console.error(err);
  } finally {
    progress(null);
    state.busy = false;
    hook.runs += 1;
  }
}

async function analyze(items) {
  const manifest = state.manifest;
  const rules = manifest.preprocessing;
  const model = state.model;
  const t0 = performance.now();
  const files = [...items].map((item) => ({ file: item.file || item, name: nameOf(item) }))
    .filter(({ name }) => !name.split('/').pop().startsWith('.'));
  if (!files.length) throw new DicomError('No file was given: choose the files of one CT series, or its folder.');
  // Read, decode and preprocess in the worker; this thread encodes each slice as it arrives.
  const checks = { input: inputChecksOf(manifest), windowSlices: manifest.sequence.window_slices };
  const stream = state.preparer.run(files, rules, checks);
  const { value: series } = await stream.next();
  const tRead = performance.now();
  const problems = [...series.problems];
  // Series and pixel-module rules: known before any pixel is decoded; the model is not run.
  if (series.unreadable.length) return unreadableResult(series, series.unreadable, problems, files, { read_ms: tRead - t0, total_ms: tRead - t0 });
  const size = rules.input_size_px;
  const imageBytes = size * size * 3;
  const images = new Uint8Array(series.slices.length * imageBytes);
  const features = [];
  const kept = [];
  let preprocessMs = 0;
  let checkMs = 0;
  let modelMs = 0;
  let summary = null;
  let lastProgress = performance.now();
  for await (const message of stream) {
    if (message.type === 'problem') {
      problems.push(message.problem);
      continue;
    }
    if (message.type === 'checks') {
      summary = message;
      continue;
    }
    images.set(message.image, kept.length * imageBytes);
    preprocessMs += message.ms;
    checkMs += message.checkMs;
    const b = performance.now();
    features.push(await model.encode(toModelInput(message.image, rules.unit_per_pixel)));
    const c = performance.now();
    modelMs += c - b;
    kept.push(series.slices[message.index]);
    if (c - lastProgress > 80) {
      progress((message.index + 1) / series.slices.length, `slice ${message.index + 1} of ${series.slices.length}`);
      await breathe();
      lastProgress = performance.now();
    }
  }
  if (!kept.length) throw new DicomError(`No slice of the series could be decoded (${problems[problems.length - 1]}).`);
  // HU plausibility, summed over the whole series: known only now. The slices were encoded as
  // they arrived, but no window is classified and no probability is shown.
  if (summary.huProblem) {
    return unreadableResult(series, [summary.huProblem], problems, files, {
      read_ms: tRead - t0, preprocess_ms: preprocessMs, check_ms: checkMs, total_ms: performance.now() - t0,
    }, kept);
  }
  const seq = manifest.sequence;
  const c0 = performance.now();
  const blank = kept.length < seq.window_slices ? await model.encode(new Float32Array(imageBytes)) : null;
  const { slices: sliceProbabilities, starts } = await classifyStudy(
    features, blank, (window) => model.classify(window), seq.window_slices, seq.stride_slices, manifest.labels.length,
  );
  const study = studyProbabilities(sliceProbabilities);
  const tEnd = performance.now();
  modelMs += tEnd - c0;
  const thresholds = manifest.thresholds;
  const positive = manifest.labels.map((label, l) => study[l] >= thresholds.study[label]);
  const { coverage } = summary;
  const verdict = verdictOf(positive, coverage);
  return {
    verdict,
    judged: true,
    unreadable: [],
    coverage,
    // a POSITIVE on incomplete coverage stays POSITIVE, with this note (as ich-edge predict's triage line)
    note: verdict === 'POSITIVE' && !coverage.complete ? `coverage incomplete: ${coverage.reasons.join('; ')}` : null,
    huCounts: summary.counts,
    numSlices: kept.length,
    sliceIds: kept.map((s) => s.sopInstanceUid),
    sliceNames: kept.map((s) => s.name),
    seriesUid: series.seriesUid,
    seriesDescription: kept[0].seriesDescription,
    transferSyntax: kept[0].transferSyntax,
    matrix: `${kept[0].rows} x ${kept[0].columns}`,
    sortMethod: series.sortMethod,
    numFiles: files.length,
    imageSize: size,
    images: images.subarray(0, kept.length * imageBytes),
    sliceProbabilities: sliceProbabilities.map((row) => Array.from(row)),
    study: Array.from(study),
    labels: manifest.labels,
    positive,
    windowStarts: starts,
    problems,
    runtime: state.runtime.accelerator,
    threads: state.runtime.threads,
    decoding: state.preparer.where,
    // preprocess runs in the worker while the model runs here: total < read + preprocess + model
    timing: {
      read_ms: tRead - t0,
      preprocess_ms: preprocessMs,
      check_ms: checkMs, // part of preprocess_ms: the HU counts of the plausibility rule
      model_ms: modelMs,
      total_ms: tEnd - t0,
    },
  };
}

/** The result of a series that is not judged: no probabilities, its reasons (UNREADABLE). */
function unreadableResult(series, reasons, problems, files, timing, kept = null) {
  const slices = kept || series.slices;
  return {
    verdict: 'UNREADABLE',
    judged: false,
    unreadable: reasons,
    coverage: null,
    note: null,
    numSlices: slices.length,
    sliceIds: slices.map((s) => s.sopInstanceUid),
    sliceNames: slices.map((s) => s.name),
    seriesUid: series.seriesUid,
    seriesDescription: slices.length ? slices[0].seriesDescription : null,
    matrix: slices.length ? `${slices[0].rows} x ${slices[0].columns}` : '',
    sortMethod: series.sortMethod,
    numFiles: files.length,
    imageSize: state.manifest.preprocessing.input_size_px,
    images: new Uint8Array(0),
    sliceProbabilities: null,
    study: null,
    labels: state.manifest.labels,
    positive: null,
    windowStarts: [],
    problems,
    runtime: state.runtime.accelerator,
    threads: state.runtime.threads,
    decoding: state.preparer.where,
    timing: { read_ms: 0, preprocess_ms: 0, check_ms: 0, model_ms: 0, ...timing },
  };
}

// --- showing the result --------------------------------------------------------------------------

function meter(value, threshold, hit) {
  return el('div', { class: 'meter', title: `probability ${fmt(value)}, threshold ${fmt(threshold)}` },
    el('div', { class: `fill${hit ? ' hit' : ''}`, style: `width:${(100 * Math.min(1, value)).toFixed(1)}%` }),
    el('div', { class: 'tick', style: `left:calc(${(100 * threshold).toFixed(1)}% - 1px)` }));
}

/** The verdict box: the verdict, one sentence, and the reasons of UNREADABLE/INCOMPLETE or the note. */
function renderVerdict(result) {
  const { labels, positive, verdict } = result;
  const box = $('verdict');
  box.className = `verdict ${verdict.toLowerCase()}`;
  const reasons = (list) => el('ul', { class: 'reasons' }, ...list.map((r) => el('li', {}, r)));
  if (verdict === 'UNREADABLE') {
    box.replaceChildren('UNREADABLE: not judged',
      el('span', { class: 'why' }, result.unreadable[0] === missingChecksReason()
        ? 'This page cannot check its input with these app assets, so it gives no answer (no probabilities):'
        : 'The model could not have understood this series, so it gives no answer (no probabilities). Why, and how to fix the export:'),
      reasons(result.unreadable));
    return;
  }
  if (verdict === 'INCOMPLETE') {
    box.replaceChildren('INCOMPLETE: not a negative',
      el('span', { class: 'why' }, 'No label reaches its study threshold, but the model was not shown enough of the head to call the series negative:'),
      reasons(result.coverage.reasons));
    return;
  }
  const found = labels.filter((label, l) => positive[l] && label !== 'any');
  box.replaceChildren(
    verdict === 'POSITIVE' ? `POSITIVE${found.length ? `: ${found.join(', ')}` : ''}` : 'NEGATIVE',
    el('span', { class: 'why' },
      verdict === 'POSITIVE'
        ? 'Hemorrhage suspected: read this study first.'
        : 'No label reaches its study threshold, and the series covers the head.'),
  );
  if (result.note) box.append(el('span', { class: 'why note' }, `Coverage incomplete (the bleed seen stays seen): ${result.coverage.reasons.join('; ')}`));
}

function coverageText(coverage) {
  const mm = (v) => (v === null ? 'unknown' : `${v.toFixed(0)} mm`);
  const spacing = coverage.spacingMm === null ? '' : `, spacing ${coverage.spacingMm.toFixed(1)} mm`;
  return `${mm(coverage.extentMm)} along the slice axis${spacing} (a negative needs ${coverage.minExtentMm} mm, ` +
    `${coverage.windowSlices} slices, no gaps): ${coverage.complete ? 'complete' : 'incomplete'}`;
}

function render(result) {
  renderVerdict(result);
  $('labels-grid').hidden = !result.judged;
  if (!result.judged) {
    const facts = [
      ['slices', `${result.numSlices}${result.matrix ? ` (${result.matrix} px)` : ''}`],
      ['series', result.seriesDescription ? `${result.seriesDescription}` : result.seriesUid],
    ];
    $('facts-unjudged').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    $('facts-unjudged').hidden = false;
    $('problems').replaceChildren(...result.problems.map((p) => el('li', {}, p)));
    $('result').hidden = false;
    $('slices').hidden = true;
    $('strip').replaceChildren();
    return;
  }
  $('facts-unjudged').hidden = true;
  const { labels, study, positive } = result;
  const thresholds = state.manifest.thresholds;
  const body = $('labels').querySelector('tbody');
  body.replaceChildren(...labels.map((label, l) => el('tr', { 'data-label': label },
    el('td', {}, label),
    el('td', {}, el('div', { class: 'probcell' }, el('span', { class: 'value' }, fmt(study[l])), meter(study[l], thresholds.study[label], positive[l]))),
    el('td', { class: 'num threshold' }, fmt(thresholds.study[label])),
    // INCOMPLETE: a label under its threshold is not a negative either
    el('td', {}, positive[l]
      ? el('span', { class: 'tag positive' }, 'positive')
      : el('span', { class: `tag ${result.verdict === 'INCOMPLETE' ? 'neutral' : 'negative'}` }, result.verdict === 'INCOMPLETE' ? 'below' : 'negative')),
  )));
  const t = result.timing;
  const facts = [
    ['slices', `${result.numSlices} (${result.matrix} px, sorted by ${result.sortMethod === 'position' ? 'position along the slice normal' : result.sortMethod.replace('_', ' ')})`],
    ['series', result.seriesDescription ? `${result.seriesDescription}` : result.seriesUid],
    ['runtime', state.runtime.label],
    ['time', `${ms(t.total_ms)} for the study`],
    ['', `read ${ms(t.read_ms)}, preprocess ${ms(t.preprocess_ms)} (in ${result.decoding}, beside the model), model ${ms(t.model_ms)} (${(t.total_ms / result.numSlices).toFixed(1)} ms per slice)`],
    ['windows', `${result.windowStarts.length} of ${state.manifest.sequence.window_slices} slices, starting at ${result.windowStarts.join(', ')}`],
    ['coverage', coverageText(result.coverage)],
  ];
  $('facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  $('problems').replaceChildren(...result.problems.map((p) => el('li', {}, p)));
  $('result').hidden = false;
  renderStrip(result);
}

/** The label whose slices are flagged: the positive label with the highest study probability
 *  (any, when positive), else the label with the highest study probability. */
function topLabel(result) {
  let best = -1;
  for (let l = 0; l < result.labels.length; l++) {
    const better = best < 0 || (result.positive[l] && !result.positive[best]) ||
      (result.positive[l] === result.positive[best] && result.study[l] > result.study[best]);
    if (better) best = l;
  }
  return best;
}

function drawChannel(canvas, result, index, channel) {
  const size = result.imageSize;
  const ctx = canvas.getContext('2d');
  const data = ctx.createImageData(size, size);
  const offset = index * size * size * 3;
  for (let p = 0; p < size * size; p++) {
    const v = result.images[offset + p * 3 + channel];
    data.data[4 * p] = v;
    data.data[4 * p + 1] = v;
    data.data[4 * p + 2] = v;
    data.data[4 * p + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
}

function renderStrip(result) {
  const top = topLabel(result);
  const label = result.labels[top];
  const sliceThreshold = state.manifest.thresholds.slice[label];
  const hits = result.sliceProbabilities.filter((row) => row[top] >= sliceThreshold).length;
  $('strip-note').textContent = `bottom to top; ${label} probability per slice, ${hits} of ${result.numSlices} at or above its slice threshold ${fmt(sliceThreshold)} (red)`;
  const thumbs = result.sliceProbabilities.map((row, i) => {
    const canvas = el('canvas', { width: result.imageSize, height: result.imageSize });
    drawChannel(canvas, result, i, 0);
    const hit = row[top] >= sliceThreshold;
    const button = el('button', { class: `thumb${hit ? ' hit' : ''}`, type: 'button', role: 'listitem', title: result.sliceNames[i], onclick: () => select(i) },
      canvas,
      el('div', { class: 'n' }, `#${i + 1}`),
      el('div', { class: 'p' }, fmt(row[top])),
      el('div', { class: 'bar' }, el('div', { style: `width:${(100 * row[top]).toFixed(1)}%` })));
    return button;
  });
  $('strip').replaceChildren(...thumbs);
  $('slices').hidden = false;
  // Open on the slice where the flagged label is highest.
  let best = 0;
  result.sliceProbabilities.forEach((row, i) => { if (row[top] > result.sliceProbabilities[best][top]) best = i; });
  select(best);
}

function select(index) {
  const result = state.result;
  state.selected = index;
  [...$('strip').children].forEach((node, i) => node.classList.toggle('selected', i === index));
  for (let ch = 0; ch < 3; ch++) drawChannel($(`view-${ch}`), result, index, ch);
  $('detail-title').textContent = `slice ${index + 1} of ${result.numSlices}: ${result.sliceNames[index]}`;
  const thresholds = state.manifest.thresholds.slice;
  const row = result.sliceProbabilities[index];
  $('detail-labels').querySelector('tbody').replaceChildren(...result.labels.map((label, l) => el('tr', {},
    el('td', {}, label),
    el('td', {}, el('div', { class: 'probcell' }, el('span', { class: 'value' }, fmt(row[l])), meter(row[l], thresholds[label], row[l] >= thresholds[label]))),
  )));
  const thumb = $('strip').children[index];
  if (thumb && thumb.scrollIntoView) thumb.scrollIntoView({ block: 'nearest', inline: 'nearest' });
}

// --- wiring -------------------------------------------------------------------------------------

function wire() {
  $('files').addEventListener('change', (e) => { if (e.target.files.length) analyzeFiles([...e.target.files]); e.target.value = ''; });
  $('folder').addEventListener('change', (e) => { if (e.target.files.length) analyzeFiles([...e.target.files]); e.target.value = ''; });
  const zone = $('dropzone');
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', async (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    analyzeFiles(await droppedFiles(e.dataTransfer));
  });
  // A file dropped outside the zone must not navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  $('accelerator').addEventListener('change', (e) => {
    if (!state.busy) startModel(e.target.value);
  });
  $('sample').addEventListener('click', loadSample);
  window.addEventListener('error', (e) => showError(`Something went wrong: ${e.message}`));
  window.addEventListener('unhandledrejection', (e) => showError(`Something went wrong: ${e.reason && e.reason.message ? e.reason.message : e.reason}`));
}

async function loadSample() {
  const dir = new URL(`${state.manifest.sample.dicom_dir.replace(/\/?$/, '/')}`, ASSETS);
  const files = await Promise.all(state.sampleFiles.map(async (name) => {
    const blob = await (await fetchOk(new URL(name, dir), name)).blob();
    return new File([blob], name);
  }));
  analyzeFiles(files);
}

async function main() {
  if (await ensureIsolation()) return; // reloading under sw.js, which makes the page cross-origin isolated
  state.preparer = new SeriesPreparer(params.get('worker') !== '0');
  wire();
  // The CPU by default: the manifest's on-device bounds are measured on CPU kernels, and WebGPU moved the
  // shipped file's probabilities by 0.044 (docs/experiments.md); WebGPU and auto are the user's choice.
  const choice = ['auto', 'wasm', 'webgpu'].includes(params.get('runtime')) ? params.get('runtime') : 'wasm';
  $('accelerator').value = choice;
  startModel(choice);
  try {
    const build = await (await fetch('vendor/build.json')).json();
    state.sampleFiles = build.sample_files || [];
    $('versions').textContent = `LiteRT.js ${build.versions['@litertjs/core']}, dicom-parser ${build.versions['dicom-parser']}; assets ${ASSETS.pathname}`;
    await state.modelPromise;
    $('sample').hidden = !(state.sampleFiles.length && state.manifest.sample);
  } catch {
    // the model error is already shown; the sample button stays hidden
  }
}

main();
