#!/usr/bin/env bash
# Load test of the release binary on loopback: native page-load beacons and a captured OTLP/JSON
# page load, exported over OTLP/gRPC to a real collector (rotel, discarding). Prints wrk's
# summary, the bridge's CPU time per request, its peak RSS, and the export counters.
# Bounded: each run lasts DURATION seconds (default 10) and the script stops everything it started.
#   scripts/load.sh [DURATION] [CONNECTIONS]
# RUM_BRIDGE_BIN=path/to/rum-bridge measures that binary instead of building this tree (to
# compare two builds on the same machine in one sitting).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
conns=${2:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
scripts/install-test-deps.sh >/dev/null
if [ -z "${RUM_BRIDGE_BIN:-}" ]; then
  scripts/build-release.sh --quiet
  RUM_BRIDGE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/rum-bridge"
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

.tools/rotel/rotel-agent start --otlp-grpc-endpoint 127.0.0.1:14317 --otlp-http-endpoint 127.0.0.1:14318 \
  --exporter blackhole >/dev/null 2>&1 &
pids+=($!)
cat > "$work/bridge.toml" <<TOML
[server]
listen = "127.0.0.1:14380"
admin_listen = "127.0.0.1:14381"
[[exporters]]
name = "collector"
endpoint = "http://127.0.0.1:14317"
protocol = "grpc"
TOML
RUST_LOG=warn "$RUM_BRIDGE_BIN" run --config "$work/bridge.toml" &
bridge=$!
pids+=($bridge)
for _ in $(seq 100); do curl -fs http://127.0.0.1:14381/readyz >/dev/null && break; sleep 0.1; done

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
first = open("tests/fixtures/real-clients/otlp-json.jsonl").readline()
open(f"{work}/otlp.json", "w").write(json.loads(first)["body"])
PY
cp examples/beacons/page-load.json "$work/beacon.json"
for kind in beacon otlp; do
  path=/v1/rum; [ "$kind" = otlp ] && path=/v1/traces
  cat > "$work/$kind.lua" <<LUA
local f = io.open("$work/$kind.json", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.path = "$path"
LUA
  echo "== $kind: $path, ${duration}s, $conns connections"
  wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$work/$kind.lua" http://127.0.0.1:14380 | sed -n '1,20p'
done
curl -fs http://127.0.0.1:14381/metrics | grep -E '^rum_bridge_(exported_items|items_accepted|items_rejected|export_duration_seconds_(sum|count))' | grep -v ' 0$' || true
# CPU seconds (utime + stime, in clock ticks) and peak RSS of the bridge process.
ticks=$(getconf CLK_TCK)
awk -v t="$ticks" '{ printf "bridge CPU: %.2f s user, %.2f s system\n", $14 / t, $15 / t }' "/proc/$bridge/stat"
grep VmHWM "/proc/$bridge/status" | sed 's/VmHWM:/bridge peak RSS:/'
kill -TERM "$bridge"; wait "$bridge" 2>/dev/null || true
