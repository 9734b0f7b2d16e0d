#!/usr/bin/env bash
# Tools of the Kotlin app test (tests/apps/test_kotlin_snippet.py): kotlinc from the npm package
# kotlin-compiler (version pinned in apps/jvm/package.json and package-lock.json, installed into
# apps/jvm/node_modules, ignored by git) and a JDK 17 (apt, only when javac is missing).
# Idempotent; CI runs it as root on a fresh Debian machine before `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v javac >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends openjdk-17-jdk-headless
fi

if ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends nodejs npm
fi

want="$(node -p "require('./apps/jvm/package-lock.json').packages['node_modules/kotlin-compiler'].version")"
have=""
if [ -f apps/jvm/node_modules/kotlin-compiler/package.json ]; then
  have="$(node -p "require('./apps/jvm/node_modules/kotlin-compiler/package.json').version")"
fi
if [ "$have" != "$want" ]; then
  npm ci --prefix apps/jvm --no-audit --no-fund
fi
apps/jvm/node_modules/kotlin-compiler/bin/kotlinc -version 2>&1 | head -1
