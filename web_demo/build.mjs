// Build the browser demo: copy what the page loads from node_modules into web_demo/vendor/
// (plain ES modules, the LiteRT.js wasm files, dicom-parser) and list the golden sample's
// files. No bundler: the page maps the bare module names with an import map.
//
//   npm ci && npm run build                 # then serve the repository root, open /web_demo/
//   node build.mjs --dist OUT               # also a self-contained static site in OUT/
//                                           # (OUT/web_demo/ + OUT/android_demo_assets/)
//
// The model and the sample are never copied into web_demo/: the page reads
// ../android_demo_assets/ (the one app contract of every platform). --dist copies them
// next to the page, in the same layout, for hosting elsewhere.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const modules = path.join(here, 'node_modules');
const vendor = path.join(here, 'vendor');

function copy(from, to) {
  if (!fs.existsSync(from)) {
    console.error(`missing ${path.relative(repo, from)}: run \`npm ci\` in web_demo/ first`);
    process.exit(1);
  }
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
}

fs.rmSync(vendor, { recursive: true, force: true });
copy(path.join(modules, '@litertjs/core/dist/index.js'), path.join(vendor, 'litertjs-core.js'));
copy(path.join(modules, '@litertjs/wasm-utils/dist/index.js'), path.join(vendor, 'litertjs-wasm-utils.js'));
copy(path.join(modules, 'dicom-parser/dist/dicomParser.min.js'), path.join(vendor, 'dicomParser.min.js'));
// The threaded build needs cross-origin isolation (COOP/COEP headers) that a plain static
// host does not send; the page loads the plain, JSPI or compat build.
for (const name of fs.readdirSync(path.join(modules, '@litertjs/core/wasm'))) {
  if (!name.includes('threaded')) copy(path.join(modules, '@litertjs/core/wasm', name), path.join(vendor, 'wasm', name));
}
const versions = Object.fromEntries(
  ['@litertjs/core', '@litertjs/wasm-utils', 'dicom-parser'].map((name) => [
    name,
    JSON.parse(fs.readFileSync(path.join(modules, name, 'package.json'), 'utf8')).version,
  ]),
);

// The golden sample's file names (a static server lists no folders).
const assets = path.join(repo, 'android_demo_assets');
let sampleFiles = [];
const manifestPath = path.join(assets, 'manifest.json');
if (fs.existsSync(manifestPath)) {
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  const dicomDir = path.join(assets, manifest.sample?.dicom_dir ?? 'sample/dicom');
  if (fs.existsSync(dicomDir)) sampleFiles = fs.readdirSync(dicomDir).filter((f) => !f.startsWith('.')).sort();
}
fs.writeFileSync(path.join(vendor, 'build.json'), JSON.stringify({ versions, sample_files: sampleFiles }, null, 2) + '\n');
console.log(`web_demo/vendor: LiteRT.js ${versions['@litertjs/core']}, dicom-parser ${versions['dicom-parser']}, ${sampleFiles.length} sample files listed`);

const distIndex = process.argv.indexOf('--dist');
if (distIndex > 0) {
  const out = path.resolve(process.argv[distIndex + 1] ?? 'dist');
  const page = ['index.html', 'style.css', 'sw.js', 'src', 'vendor'];
  for (const item of page) fs.cpSync(path.join(here, item), path.join(out, 'web_demo', item), { recursive: true });
  for (const item of ['manifest.json', 'model.tflite', 'labels.txt', 'sample']) {
    fs.cpSync(path.join(assets, item), path.join(out, 'android_demo_assets', item), { recursive: true });
  }
  console.log(`static site in ${out}: serve it and open /web_demo/`);
}
