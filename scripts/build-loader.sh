#!/usr/bin/env bash
# Builds the browser loader: loader/rum.js -> loader/rum.min.js (what the daemon serves at
# GET /rum.js), with the terser version pinned in loader/package-lock.json.
# Commit rum.min.js with rum.js; the test suite fails when it is stale.
set -euo pipefail
cd "$(dirname "$0")/../loader"
if [ ! -x node_modules/.bin/terser ]; then
  npm ci --no-audit --no-fund
fi
node build.mjs
gzip -9 -c rum.min.js | wc -c | xargs printf 'gzipped: %s bytes (budget: < 5120)\n'
