#!/usr/bin/env bash
# Installs what the whole-daemon tests need (idempotent: each step is skipped when done):
#   - rotel, a Rust OpenTelemetry collector, shipped as a binary inside the PyPI wheel `rotel`
#     (the version pinned in ROTEL_VERSION below), into ./.tools;
#   - Debian's chromium and chromium-driver, for the browser tests (headless, driven over
#     WebDriver);
#   - Debian's nginx (nginx-light), the load balancer of the scale-out test (tests/scale_out.rs
#     starts it with examples/scale-out/nginx.conf and its own prefix; the service is not used);
#   - Debian's prometheus (with promtool), for the rule-pack test (tests/prometheus_rules.rs)
#     and `budget --prometheus` (tests/budget_prometheus.rs; the service is not used);
#   - the npm packages the browser tests load into pages (tests/browser/package-lock.json:
#     Grafana Faro Web SDK and tracing, Google web-vitals, Elastic RUM, Splunk RUM with esbuild,
#     Boomerang), with `npm ci`;
#   - the loader's build tool (terser, pinned in loader/package-lock.json) into
#     loader/node_modules, for the test that rum.min.js is the build of rum.js and for the
#     source-map tests (tests/sourcemaps.rs), which minify a bundle and its map with it.
set -euo pipefail

# The rotel wheel is pinned: it has only pre-releases (0.0.1aN), so an unpinned download takes
# whatever alpha was published last and silently changes the collector under the tests. Bump it
# on purpose and rerun the tests. (The agent's --version is not the wheel's: 0.0.1a15 prints
# "0.0.1-alpha10"; .tools/rotel/VERSION records which wheel was installed.)
ROTEL_VERSION=0.0.1a15

cd "$(dirname "$0")/.."
tools="$PWD/.tools"
mkdir -p "$tools"

if [ ! -x "$tools/rotel/rotel-agent" ] || [ "$(cat "$tools/rotel/VERSION" 2>/dev/null)" != "$ROTEL_VERSION" ]; then
  echo "installing rotel $ROTEL_VERSION (collector) from PyPI into .tools/rotel"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: "rotel==$ROTEL_VERSION" -d "$tmp"
  python3 - "$tmp" "$tools" <<'PY'
import glob, sys, zipfile
tmp, tools = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/rotel-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extract("rotel/rotel-agent", tools)
PY
  chmod +x "$tools/rotel/rotel-agent"
  echo "$ROTEL_VERSION" >"$tools/rotel/VERSION"
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

if [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (Debian package nginx-light)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # nginx-light is bookworm's small build; later releases fold it into nginx.
  apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 ||
    apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi

if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then
  echo "installing prometheus and promtool (Debian package prometheus)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# npm ci wipes and reinstalls node_modules: only when the lock file changed since the last run.
lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.installed-from-lock
if ! cmp -s "$lock" "$stamp" 2>/dev/null; then
  echo "installing the browser tests' npm packages (npm ci in tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" "$stamp"
fi

echo "test dependencies ready (.tools/, chromium, nginx, prometheus, tests/browser/node_modules, loader/node_modules)"
