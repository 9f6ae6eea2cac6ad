#!/usr/bin/env bash
# Builds the demo shop's page script: static/shop.js -> static/shop.min.js and its source map
# static/shop.min.js.map (with the original source inside), using the terser version pinned in
# loader/package-lock.json. The outputs are committed: the demo runs without node, and
# examples/demo-shop/main.rs embeds them. Rerun after editing static/shop.js.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
terser="$root/loader/node_modules/.bin/terser"
if [ ! -x "$terser" ]; then
  (cd "$root/loader" && npm ci --no-audit --no-fund)
fi
cd "$(dirname "$0")/static"
# Mangled names (inside the page script's closure), no compression: the stack keeps one frame per
# function, which is what the demo shows being resolved.
"$terser" shop.js --mangle \
  --source-map "url='shop.min.js.map',includeSources" \
  -o shop.min.js
