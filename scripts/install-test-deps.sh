#!/usr/bin/env bash
# Installs what the whole-daemon tests need (idempotent: each step is skipped when done):
#   - rotel, a Rust OpenTelemetry collector, shipped as a binary inside the PyPI wheel `rotel`,
#     into ./.tools;
#   - Debian's chromium and chromium-driver, for the browser tests (headless, driven over
#     WebDriver);
#   - the npm packages the browser tests load into pages (tests/browser/package-lock.json:
#     Grafana Faro Web SDK and tracing, Google web-vitals), with `npm ci`;
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

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing chromium and chromium-driver (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

# npm ci wipes and reinstalls node_modules: only when the lock file changed since the last run.
lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.installed-from-lock
if ! cmp -s "$lock" "$stamp" 2>/dev/null; then
  echo "installing the browser tests' npm packages (npm ci in tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" "$stamp"
fi

echo "test dependencies ready (.tools/, chromium, tests/browser/node_modules, loader/node_modules)"
