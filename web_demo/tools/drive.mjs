// Drive the demo page in headless Chromium (playwright-core) the way a person does: open the
// page, wait for the model, pick files with the page's own file input, wait for the result.
// Used by tests/apps/test_web_demo.py and benchmarks/browser_latency.py.
//
//   node web_demo/tools/drive.mjs PLAN.json OUT.json
//
// PLAN: {
//   "url": "http://127.0.0.1:PORT/web_demo/?runtime=wasm",
//   "chromium": "/usr/bin/chromium",            (optional; $CHROMIUM, else /usr/bin/chromium)
//   "extra_args": ["--enable-unsafe-webgpu"],   (optional)
//   "viewport": [1280, 900],                    (optional)
//   "screenshot": "/tmp/x.png",                 (optional; full page, after the last step)
//   "timeout_ms": 120000,                       (optional; per step)
//   "steps": [{"name": "golden", "files": ["a.dcm", ...], "repeat": 1, "images_out": "/tmp/g.u8"},
//             {"name": "folder", "selector": "#folder", "files": ["/path/to/series/"]},
//             {"name": "drop", "drop_urls": ["/android_demo_assets/sample/dicom/x.dcm", ...]},
//             {"name": "x", "files": [...], "screenshot": "/tmp/x.png"}]   (a full-page screenshot after the step)
// }
// OUT: {model: {...}, steps: {name: {runs: [{error, timing, runtime}], result}}, console, page_errors}
// result holds the last run's probabilities (not the images: those go to images_out, raw uint8).

import fs from 'node:fs';
import { chromium } from 'playwright-core';

const [planPath, outPath] = process.argv.slice(2);
if (!planPath || !outPath) {
  console.error('usage: node drive.mjs PLAN.json OUT.json');
  process.exit(2);
}
const plan = JSON.parse(fs.readFileSync(planPath, 'utf8'));
const timeout = plan.timeout_ms ?? 120000;
const report = { model: null, steps: {}, console: [], page_errors: [] };

const args = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-dev-shm-usage',
  ...(plan.extra_args ?? []),
];
const userDataDir = fs.mkdtempSync(`${process.env.TMPDIR || '/tmp'}/ich-edge-chromium-`);
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: plan.chromium || process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args,
  viewport: { width: (plan.viewport ?? [1280, 900])[0], height: (plan.viewport ?? [1280, 900])[1] },
  deviceScaleFactor: plan.device_scale_factor ?? 1,
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (msg) => {
    if (['error', 'warning'].includes(msg.type())) report.console.push(`${msg.type()}: ${msg.text()}`.slice(0, 500));
  });
  page.on('pageerror', (err) => report.page_errors.push(String(err).slice(0, 500)));
  await page.goto(plan.url, { waitUntil: 'load', timeout });
  await page.waitForFunction(() => window.ichEdge && (window.ichEdge.modelReady || window.ichEdge.modelError), null, { timeout });
  report.model = await page.evaluate(() => ({
    ready: window.ichEdge.modelReady,
    error: window.ichEdge.modelError,
    runtime: window.ichEdge.runtime ?? null,
    adapter: window.ichEdge.adapter ?? null,
    load_ms: window.ichEdge.modelLoadMs ?? null,
    isolated: window.crossOriginIsolated,
    threads: window.ichEdge.threads ?? null,
    build: window.ichEdge.build ?? null,
    decoding: window.ichEdge.decoding ?? null,
    controlled_by_service_worker: Boolean(navigator.serviceWorker && navigator.serviceWorker.controller),
    hardware_concurrency: navigator.hardwareConcurrency,
    user_agent: navigator.userAgent,
    webgpu_api: 'gpu' in navigator,
    status: document.getElementById('model-status').textContent,
    input_checks: window.ichEdge.inputChecks ?? null,
    checks_warning: (() => {
      const box = document.getElementById('checks-warning');
      return box && !box.hidden ? box.textContent : null;
    })(),
  }));
  if (report.model.ready) {
    for (const step of plan.steps ?? []) {
      const runs = [];
      for (let k = 0; k < (step.repeat ?? 1); k++) {
        const before = await page.evaluate(() => window.ichEdge.runs);
        if (step.drop_urls) {
          // Drag and drop: the files fetched in the page, dropped on the drop zone.
          const dataTransfer = await page.evaluateHandle(async (urls) => {
            const transfer = new DataTransfer();
            for (const url of urls) {
              const blob = await (await fetch(url)).blob();
              transfer.items.add(new File([blob], url.split('/').pop()));
            }
            return transfer;
          }, step.drop_urls);
          await page.dispatchEvent('#dropzone', 'drop', { dataTransfer });
        } else {
          await page.setInputFiles(step.selector ?? '#files', step.files);
        }
        await page.waitForFunction((n) => window.ichEdge.runs > n, before, { timeout });
        runs.push(await page.evaluate(() => {
          const hook = window.ichEdge;
          const shown = document.getElementById('error');
          return {
            error: hook.error,
            error_shown: shown.hidden ? null : shown.textContent,
            timing: hook.error ? null : hook.result.timing,
            runtime: hook.error ? null : hook.result.runtime,
          };
        }));
      }
      const last = runs[runs.length - 1];
      let result = null;
      if (!last.error) {
        result = await page.evaluate(() => {
          const r = window.ichEdge.result;
          return {
            verdict_kind: r.verdict, // POSITIVE, NEGATIVE, INCOMPLETE or UNREADABLE
            judged: r.judged,
            unreadable: r.unreadable,
            coverage: r.coverage,
            note: r.note,
            hu_counts: r.huCounts ?? null,
            check_ms: r.timing.check_ms ?? null,
            num_slices: r.numSlices,
            slice_ids: r.sliceIds,
            labels: r.labels,
            slice_probabilities: r.sliceProbabilities,
            study: r.study,
            positive: r.positive,
            window_starts: r.windowStarts,
            problems: r.problems,
            image_size: r.imageSize,
            result_text: document.getElementById('result').innerText,
            verdict: document.getElementById('verdict').innerText,
            thumbnails: document.querySelectorAll('#strip .thumb').length,
          };
        });
        if (step.images_out) {
          const b64 = await page.evaluate(() => {
            const bytes = window.ichEdge.result.images;
            let text = '';
            for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
            return btoa(text);
          });
          fs.writeFileSync(step.images_out, Buffer.from(b64, 'base64'));
        }
      }
      if (step.screenshot) await page.screenshot({ path: step.screenshot, fullPage: true });
      report.steps[step.name] = { runs, result };
    }
    if (plan.offline_check) {
      // Reload the page with the network cut: the service worker's copy must bring it back.
      await page.waitForFunction(() => window.ichEdge.offlineReady || window.ichEdge.offlineError, null, { timeout });
      const before = await page.evaluate(() => ({ files: window.ichEdge.offlineFiles, error: window.ichEdge.offlineError ?? null }));
      await context.setOffline(true);
      const check = { cached_files: before.files ?? null, cache_error: before.error, reloaded: false, model_ready: false, fetch_blocked: null };
      try {
        await page.reload({ waitUntil: 'load', timeout });
        check.reloaded = true;
        await page.waitForFunction(() => window.ichEdge && (window.ichEdge.modelReady || window.ichEdge.modelError), null, { timeout });
        check.model_ready = await page.evaluate(() => window.ichEdge.modelReady);
        check.model_error = await page.evaluate(() => window.ichEdge.modelError);
        // The network really is cut: a URL the page never fetched does not load.
        check.fetch_blocked = await page.evaluate(async () => {
          try { await fetch(`vendor/not-cached-${Date.now()}.txt`); return false; } catch { return true; }
        });
        const prior = await page.evaluate(() => window.ichEdge.runs);
        await page.setInputFiles('#files', plan.offline_check.files);
        await page.waitForFunction((n) => window.ichEdge.runs > n, prior, { timeout });
        check.error = await page.evaluate(() => window.ichEdge.error);
        check.study = await page.evaluate(() => window.ichEdge.result && window.ichEdge.result.study);
      } catch (err) {
        check.exception = String(err).slice(0, 300);
      }
      await context.setOffline(false);
      report.offline = check;
    }
  }
  report.layout = await page.evaluate(() => ({
    scroll_width: document.documentElement.scrollWidth,
    inner_width: window.innerWidth,
  }));
  if (plan.screenshot) await page.screenshot({ path: plan.screenshot, fullPage: true });
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  fs.writeFileSync(outPath, JSON.stringify(report, null, 1));
}
