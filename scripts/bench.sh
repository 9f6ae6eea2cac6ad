#!/usr/bin/env bash
# Side-by-side benchmark: rum-bridge against the collector it feeds, in one run on one machine.
#
#   scripts/bench.sh [DURATION_SECONDS=10] [CONNECTIONS=32]
#
# Cases, each with fresh processes (so peak RSS belongs to that case alone):
#   rotel-json    browser OTLP/JSON page load → front rotel → OTLP/gRPC → back rotel
#   bridge-json   the same body               → rum-bridge → OTLP/gRPC → back rotel
#   rotel-proto   the same page load as OTLP/protobuf → front rotel → back rotel
#   bridge-proto  the same protobuf body       → rum-bridge → back rotel
#   bridge-native the native page-load beacon (examples/beacons/page-load.json) → rum-bridge → back rotel
# The front process and the back collector share CPU 0; wrk and a counting sink (the back
# collector exports there over OTLP/HTTP) run on CPU 1. For each case it prints accepted req/s,
# the front process's CPU µs per accepted request, p50/p99 latency, its peak RSS, and whether the
# back collector received every span and log record that was acknowledged; then the ratios that
# docs/performance.md sets targets for. Numbers drift with machine load: compare ratios from one
# run. RUM_BRIDGE_BIN=path measures that binary instead of building this tree. The payloads are
# requests captured from real agents (tests/fixtures/real-clients/).
# Bounded: every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
conns=${2:-32}
for tool in wrk taskset python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (Debian: apt-get install -y $tool)" >&2; exit 1; }
done
scripts/install-test-deps.sh >/dev/null
rotel=.tools/rotel/rotel-agent
if [ -z "${RUM_BRIDGE_BIN:-}" ]; then
  scripts/build-release.sh --quiet --bin rum-bridge
  RUM_BRIDGE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/rum-bridge"
fi
cpus=$(nproc)
front_cpu=0
load_cpu=$((cpus > 1 ? 1 : 0))

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

# The payloads: the first captured OTLP/JSON and OTLP/protobuf page loads, and the native beacon.
python3 - "$work" <<'PY'
import base64, json, sys
work = sys.argv[1]
def first(name):
    return json.loads(open(f"tests/fixtures/real-clients/{name}.jsonl").readline())
j = first("otlp-json")
open(f"{work}/json.body", "w").write(j["body"])
p = first("otlp-proto")
raw = base64.b64decode(p["body"]) if p.get("body_encoding") == "base64" else p["body"].encode("latin-1")
open(f"{work}/proto.body", "wb").write(raw)
PY
cp examples/beacons/page-load.json "$work/native.body"

# The counting sink: an OTLP/HTTP protobuf receiver that counts spans and log records.
cat > "$work/sink.py" <<'PY'
import gzip, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"spans": 0, "logs": 0, "requests": 0}
lock = threading.Lock()

def varint(b, i):
    shift = value = 0
    while True:
        c = b[i]; i += 1
        value |= (c & 0x7F) << shift
        if c < 0x80:
            return value, i
        shift += 7

def children(b, want):
    """The length-delimited fields numbered `want` of one protobuf message."""
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = varint(b, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = varint(b, i)
            if field == want:
                out.append(b[i:i + n])
            i += n
        else:
            raise ValueError(f"wire type {wire}")
    return out

def leaves(body):
    # Export*ServiceRequest.resource_*(1) → Resource*.scope_*(2) → Scope*.items(2)
    return sum(len(children(s, 2)) for r in children(body, 1) for s in children(r, 2))

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        n = leaves(body)
        with lock:
            counts["requests"] += 1
            if self.path.endswith("/v1/traces"):
                counts["spans"] += n
            elif self.path.endswith("/v1/logs"):
                counts["logs"] += n
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        with lock:
            body = json.dumps(counts).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY

# wrk reports its totals as one machine-readable line.
wrk_script() { # $1 body file, $2 path, $3 content type
  cat <<LUA
local f = io.open("$1", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.path = "$2"
wrk.headers["Content-Type"] = "$3"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout, summary.duration, latency:percentile(50),
    latency:percentile(99)))
end
LUA
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
peak_rss_mib() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
sink_count() { curl -fs "http://127.0.0.1:$1/" | python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["spans"] + c["logs"])'; }

results="$work/results"
: > "$results"
ticks=$(getconf CLK_TCK)

run_case() { # $1 name, $2 front (rotel|bridge), $3 body file, $4 path, $5 content type
  local name=$1 front=$2 body=$3 path=$4 ctype=$5
  local sink_port back_grpc back_http front_port admin_port
  sink_port=$(port); back_grpc=$(port); back_http=$(port); front_port=$(port); admin_port=$(port)
  local case_pids=()
  taskset -c "$load_cpu" python3 "$work/sink.py" "$sink_port" & case_pids+=($!)
  taskset -c "$front_cpu" "$rotel" start --otlp-grpc-endpoint "127.0.0.1:$back_grpc" \
    --otlp-http-endpoint "127.0.0.1:$back_http" --exporter otlp --otlp-exporter-protocol http \
    --otlp-exporter-endpoint "http://127.0.0.1:$sink_port" --batch-timeout 100ms \
    >/dev/null 2>&1 & case_pids+=($!)
  wait_port "$sink_port"; wait_port "$back_grpc"
  local fpid
  if [ "$front" = rotel ]; then
    local front_grpc; front_grpc=$(port)
    taskset -c "$front_cpu" "$rotel" start --otlp-grpc-endpoint "127.0.0.1:$front_grpc" \
      --otlp-http-endpoint "127.0.0.1:$front_port" --exporter otlp --otlp-exporter-protocol grpc \
      --otlp-exporter-endpoint "http://127.0.0.1:$back_grpc" >/dev/null 2>&1 &
    fpid=$!
  else
    cat > "$work/bridge.toml" <<TOML
[server]
listen = "127.0.0.1:$front_port"
admin_listen = "127.0.0.1:$admin_port"
[rate_limits]
per_ip_requests_per_second = 0
[privacy]
user_id_key = "bench-only-not-a-secret-0123456789"
[[exporters]]
name = "collector"
endpoint = "http://127.0.0.1:$back_grpc"
protocol = "grpc"
TOML
    RUST_LOG=warn taskset -c "$front_cpu" "$RUM_BRIDGE_BIN" run --config "$work/bridge.toml" \
      2>"$work/$name.log" &
    fpid=$!
  fi
  case_pids+=($fpid)
  pids+=("${case_pids[@]}")
  wait_port "$front_port"

  # One request first: how many spans + log records one acknowledged request delivers.
  local before per_request
  curl -fs -o /dev/null -H "content-type: $ctype" --data-binary "@$body" "http://127.0.0.1:$front_port$path"
  per_request=0
  for _ in $(seq 100); do
    per_request=$(sink_count "$sink_port")
    [ "$per_request" -gt 0 ] && break
    sleep 0.1
  done
  sleep 1 # let a second export of the same request (logs after spans) arrive before the run
  per_request=$(sink_count "$sink_port")
  before=$per_request

  wrk_script "$body" "$path" "$ctype" > "$work/$name.lua"
  local cpu0 line
  cpu0=$(cpu_ticks "$fpid")
  line=$(taskset -c "$load_cpu" wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$work/$name.lua" \
    "http://127.0.0.1:$front_port" | grep '^RESULT')
  local cpu1 rss
  cpu1=$(cpu_ticks "$fpid")
  rss=$(peak_rss_mib "$fpid")
  # shellcheck disable=SC2086
  set -- $line
  local total=$2 refused=$3 socket_errors=$4 micros=$5 p50=$6 p99=$7
  local accepted=$((total - refused))
  local expected=$((before + accepted * per_request))
  # The back collector must receive everything acknowledged (bounded wait for the last batches).
  local got=0
  for _ in $(seq 300); do
    got=$(sink_count "$sink_port")
    [ "$got" -ge "$expected" ] && break
    sleep 0.1
  done
  python3 - "$name" "$accepted" "$refused" "$socket_errors" "$micros" "$p50" "$p99" \
    "$((cpu1 - cpu0))" "$ticks" "$rss" "$expected" "$got" >> "$results" <<'PY'
import json, sys
name, acc, ref, sock, us, p50, p99, cpu, ticks, rss, exp, got = sys.argv[1:]
acc, us, cpu, ticks = int(acc), int(us), int(cpu), int(ticks)
print(json.dumps({
    "case": name, "accepted_rps": acc / (us / 1e6), "refused": int(ref), "socket_errors": int(sock),
    "cpu_us_per_req": (cpu / ticks * 1e6 / acc) if acc else None,
    "p50_ms": int(p50) / 1000, "p99_ms": int(p99) / 1000, "peak_rss_mib": int(rss),
    "expected_items": int(exp), "delivered_items": int(got),
}))
PY
  # The front first, so it can flush to a back collector that is still there.
  kill "$fpid" 2>/dev/null || true
  wait "$fpid" 2>/dev/null || true
  for p in "${case_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${case_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

echo "rum-bridge $("$RUM_BRIDGE_BIN" --version 2>/dev/null | head -1), rotel $(cat .tools/rotel/VERSION 2>/dev/null || echo '?'), $cpus CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "front + back collector on CPU $front_cpu, wrk + sink on CPU $load_cpu; ${duration}s per case, $conns connections"
run_case rotel-json rotel "$work/json.body" /v1/traces application/json
run_case bridge-json bridge "$work/json.body" /v1/traces application/json
run_case rotel-proto rotel "$work/proto.body" /v1/traces application/x-protobuf
run_case bridge-proto bridge "$work/proto.body" /v1/traces application/x-protobuf
run_case bridge-native bridge "$work/native.body" /v1/rum application/json

python3 - "$results" <<'PY'
import json, sys
rows = {r["case"]: r for r in map(json.loads, open(sys.argv[1]))}
print()
print(f"| case | accepted req/s | refused | CPU µs/req (front) | p50 ms | p99 ms | peak RSS MiB | delivered / acknowledged items |")
print(f"|---|---|---|---|---|---|---|---|")
lost = False
for r in rows.values():
    cpu = f"{r['cpu_us_per_req']:.0f}" if r["cpu_us_per_req"] else "-"
    ok = r["delivered_items"] >= r["expected_items"]
    lost |= not ok
    print(f"| {r['case']} | {r['accepted_rps']:.0f} | {r['refused']} | {cpu} | {r['p50_ms']:.1f} | "
          f"{r['p99_ms']:.1f} | {r['peak_rss_mib']} | {r['delivered_items']} / {r['expected_items']}"
          f"{'' if ok else ' LOST'} |")
def ratio(a, b, key):
    x, y = rows[a][key], rows[b][key]
    return f"{x / y:.2f}×" if x and y else "-"
print()
print(f"bridge/rotel accepted req/s, JSON:     {ratio('bridge-json', 'rotel-json', 'accepted_rps')}  (target ≥ 1.2×)")
print(f"bridge/rotel CPU per request, JSON:    {ratio('bridge-json', 'rotel-json', 'cpu_us_per_req')}  (target ≤ 0.8×)")
print(f"bridge/rotel accepted req/s, protobuf: {ratio('bridge-proto', 'rotel-proto', 'accepted_rps')}  (target ≥ 1.0×)")
n = rows["bridge-native"]["cpu_us_per_req"]
print(f"native beacon CPU per accepted beacon: {n:.0f} µs  (target ≤ 200 µs)" if n else "native: nothing accepted")
print(f"peak RSS of the bridge: {max(r['peak_rss_mib'] for k, r in rows.items() if k.startswith('bridge'))} MiB  (target ≤ 64 MiB)")
if lost:
    print("SOME ACKNOWLEDGED ITEMS NEVER REACHED THE BACK COLLECTOR")
    sys.exit(1)
PY
