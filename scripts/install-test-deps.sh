#!/usr/bin/env bash
# Installs what the whole-daemon tests need into ./.tools (idempotent):
#   - rotel, a Rust OpenTelemetry collector, shipped as a binary inside the PyPI wheel `rotel`;
#   - the loader's build tool (terser, pinned in loader/package-lock.json) into
#     loader/node_modules, for the test that rum.min.js is the build of rum.js.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/.tools"
mkdir -p "$tools"

if [ ! -x "$tools/rotel/rotel-agent" ]; then
  echo "installing rotel (collector) from PyPI into .tools/rotel"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: rotel -d "$tmp"
  python3 - "$tmp" "$tools" <<'PY'
import glob, sys, zipfile
tmp, tools = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/rotel-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extract("rotel/rotel-agent", tools)
PY
  chmod +x "$tools/rotel/rotel-agent"
  rm -rf "$tmp"
fi
"$tools/rotel/rotel-agent" --version >/dev/null 2>&1 || "$tools/rotel/rotel-agent" --help >/dev/null

if [ ! -x loader/node_modules/.bin/terser ]; then
  echo "installing the loader's build tool (npm ci in loader/)"
  (cd loader && npm ci --no-audit --no-fund)
fi
echo "test dependencies ready in .tools/ and loader/node_modules/"
