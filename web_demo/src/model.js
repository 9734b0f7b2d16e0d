// The model of the app contract, run with LiteRT.js: `encode` (one slice -> features) and
// `classify` (features of one window -> probabilities), driven by manifest.json only.

import { loadLiteRt, unloadLiteRt, loadAndCompile, Tensor, isWebGPUSupported, supportsFeature } from '@litertjs/core';

let runtime = null; // {flavor, promise}: the LiteRT.js wasm build loaded (one per page at a time)

/** Which LiteRT.js wasm build suits an accelerator: 'threads' for the CPU where the page is
 *  cross-origin isolated (SharedArrayBuffer) and the browser has relaxed SIMD, else 'jspi'
 *  where the browser has JSPI (WebGPU needs it to run ops the GPU lacks on the CPU), else
 *  the plain build. */
async function flavorFor(accelerator) {
  const has = (feature) => supportsFeature(feature).catch(() => false);
  if (accelerator === 'wasm' && globalThis.crossOriginIsolated && (await has('relaxedSimd')) && (await has('threads'))) {
    return 'threads';
  }
  return (await has('jspi')) ? 'jspi' : 'plain';
}

/** Load the LiteRT.js wasm build for ``accelerator`` (reloading it if another one is loaded). */
async function loadRuntime(wasmDir, accelerator) {
  const flavor = await flavorFor(accelerator);
  if (runtime && runtime.flavor !== flavor) {
    await runtime.promise.catch(() => {});
    unloadLiteRt();
    runtime = null;
  }
  if (!runtime) {
    hookRuntimeErrors();
    const promise = loadLiteRt(wasmDir, { threads: flavor === 'threads', jspi: flavor === 'jspi' });
    runtime = { flavor, promise };
    promise.catch(() => { runtime = null; });
  }
  await runtime.promise;
  return flavor;
}

/** CPU threads for the model: ?threads=N, else every core (at most 8), 1 without the threaded build. */
export function threadsWanted(flavor) {
  if (flavor !== 'threads') return 1;
  const asked = Number.parseInt(new URLSearchParams(globalThis.location ? location.search : '').get('threads'), 10);
  const cores = navigator.hardwareConcurrency || 1;
  return Math.max(1, Math.min(Number.isFinite(asked) ? asked : cores, cores, 8));
}

/** The WebGPU adapter's description ("" when it gives none), or null without WebGPU. */
export async function webGpuAdapter() {
  try {
    if (!isWebGPUSupported() || !navigator.gpu) return null;
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info || {};
    return [info.vendor, info.architecture, info.description].filter(Boolean).join(' ').trim();
  } catch {
    return null;
  }
}

/** Hex SHA-256 of bytes, or null where crypto.subtle is missing (plain http off localhost). */
export async function sha256Hex(bytes) {
  if (!globalThis.crypto || !crypto.subtle) return null;
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function checkFloat32(spec, where) {
  if (spec.dtype !== 'float32') {
    throw new Error(
      `${where} is ${spec.dtype}; this page feeds float32 tensors (LiteRT.js takes float32, int32 and uint8 only): ` +
        'export the model with float32 inputs and outputs (ich-edge assets does for every precision but full int8 I/O)',
    );
  }
}

/** What the LiteRT runtime printed as ERROR (its exceptions say only "Failed to load model
 *  from buffer"; the reason goes to the console). Hooked before the wasm module binds
 *  console.error, so it sees the runtime's lines. */
const runtimeErrors = [];
let hooked = false;
function hookRuntimeErrors() {
  if (hooked) return;
  hooked = true;
  const original = console.error;
  console.error = (...args) => {
    const text = args.map(String).join(' ');
    if (/ERROR:/.test(text)) {
      runtimeErrors.push(text.replace(/^.*ERROR: (\[[^\]]*\] )?/, '').trim());
      if (runtimeErrors.length > 20) runtimeErrors.shift();
    }
    original.apply(console, args);
  };
}

/** Run fn; if it throws, add the runtime's ERROR lines printed meanwhile to the message. */
async function withRuntimeErrors(fn) {
  const before = runtimeErrors.length;
  try {
    return await fn();
  } catch (err) {
    const message = err && err.message ? err.message : String(err);
    const seen = runtimeErrors.slice(before);
    throw new Error(seen.length ? `${message}: ${seen.join('; ')}` : message);
  }
}

/** True when a signature input has a dynamic dimension (-1), such as encode's batch. */
function hasDynamicDims(runner) {
  return runner.getInputDetails().some((detail) => Array.from(detail.shape).some((d) => d < 0));
}

/**
 * Run a signature whose input has a dynamic batch dimension with a concrete batch of 1.
 * LiteRT.js 2.5.3's run() checks the input buffer against the declared type, where the batch
 * is -1, and refuses every concrete shape ("does not match expected ranked tensor type
 * Float32[-1, 128, 128, 3]"); the compiled model itself runs it. So this calls the compiled
 * model with the signature's index, as the runner's run() does after its check. Pinned to @litertjs/core
 * 2.5.3 (package-lock.json); a model exported with a fixed batch of 1 does not come here.
 */
async function runDynamic(runner, input) {
  const { inputsOnAccelerator, cleanup } = await runner.ensureInputsOnAccelerator([input]);
  try {
    const buffers = await runner.liteRtCompiledModel.run(
      runner.signatureIndex, inputsOnAccelerator.map((tensor) => tensor.liteRtTensorBuffer),
    );
    return buffers.map((buffer) => new Tensor(buffer, runner.options.environment));
  } finally {
    cleanup();
  }
}

export class IchEdgeModel {
  /**
   * @param {object} options
   * @param {string} options.wasmDir folder of the LiteRT.js wasm files
   * @param {Uint8Array} options.modelBytes model.tflite
   * @param {object} options.manifest manifest.json
   * @param {'wasm'|'webgpu'} options.accelerator ('wasm': on the threaded build where the page
   *     is cross-origin isolated, ?threads=N or every core)
   */
  static async load({ wasmDir, modelBytes, manifest, accelerator }) {
    const flavor = await loadRuntime(wasmDir, accelerator);
    const threads = accelerator === 'wasm' ? threadsWanted(flavor) : 1;
    const encodeSpec = manifest.signatures.encode;
    const classifySpec = manifest.signatures.classify;
    checkFloat32(encodeSpec.inputs[0], 'the encode input');
    checkFloat32(encodeSpec.outputs[0], 'the encode output');
    checkFloat32(classifySpec.inputs[0], 'the classify input');
    checkFloat32(classifySpec.outputs[0], 'the classify output');
    const options = accelerator === 'wasm' ? { accelerator, cpuOptions: { numThreads: threads } } : { accelerator };
    const compiled = await withRuntimeErrors(() => loadAndCompile(modelBytes, options));
    const names = Object.keys(compiled.signatures);
    for (const needed of ['encode', 'classify']) {
      if (!names.includes(needed)) throw new Error(`model.tflite has no '${needed}' signature (it has ${names.join(', ')})`);
    }
    return new IchEdgeModel(compiled, manifest, accelerator, { flavor, threads });
  }

  constructor(compiled, manifest, accelerator, { flavor, threads }) {
    this.compiled = compiled;
    this.manifest = manifest;
    this.accelerator = accelerator;
    this.build = flavor; // the LiteRT.js wasm build: 'threads', 'jspi' or 'plain'
    this.threads = threads; // CPU threads the model runs on
    this.fullyAccelerated = compiled.isFullyAccelerated;
    const size = manifest.preprocessing.input_size_px;
    this.imageShape = [1, size, size, 3];
    this.windowSlices = manifest.sequence.window_slices;
    this.featureDim = manifest.sequence.feature_dim;
    this.numLabels = manifest.labels.length;
  }

  async run(signature, data, shape) {
    const spec = this.manifest.signatures[signature];
    const runner = this.compiled.signatures[signature];
    this.dynamic ??= {};
    this.dynamic[signature] ??= hasDynamicDims(runner); // asked once: it reads the signature's details
    const input = new Tensor(data, shape);
    try {
      let out;
      let outputs;
      if (this.dynamic[signature]) {
        outputs = await runDynamic(runner, input);
        out = outputs[0];
      } else {
        const named = await this.compiled.run(signature, { [spec.inputs[0].name]: input });
        outputs = Object.values(named);
        out = named[spec.outputs[0].name];
      }
      const values = Float32Array.from(await out.data());
      for (const tensor of outputs) tensor.delete();
      return values;
    } finally {
      input.delete();
    }
  }

  /** One slice's float32 model input (size*size*3) -> features (featureDim values). */
  encode(input) {
    return this.run('encode', input, this.imageShape);
  }

  /** One window of features (windowSlices*featureDim) -> probabilities (windowSlices*labels). */
  classify(window) {
    return this.run('classify', window, [1, this.windowSlices, this.featureDim]);
  }

  delete() {
    this.compiled.delete();
  }
}
