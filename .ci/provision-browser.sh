#!/usr/bin/env bash
# Provision the browser demo's test (tests/apps/test_web_demo.py): Debian's Chromium and
# web_demo's pinned npm packages (package-lock.json: @litertjs/core, dicom-parser,
# playwright-core), then the page's vendor/ folder. Idempotent; CI runs it as root on a
# fresh Debian machine before `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update
  apt-get install -y --no-install-recommends chromium
fi
if ! command -v npm >/dev/null 2>&1; then
  # Node.js >= 20 is needed by playwright-core; the machine image brings it, Debian's is older.
  apt-get update
  apt-get install -y --no-install-recommends nodejs npm
fi
cd web_demo
npm ci --no-audit --no-fund --loglevel=error
node build.mjs
