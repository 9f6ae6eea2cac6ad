#!/usr/bin/env bash
# Fuzzes every decoder of untrusted input (fuzz/fuzz_targets/) for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (installed here when missing). Seeds: the saved
# regressions and the requests captured from real agents. A crash fails the script and its
# input is copied to fuzz/regressions/<target>/, where tests/fuzz_regressions.rs replays it on
# stable in every test run: commit it with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
per_target="${1:-60}"
shift || true

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

seed() { # seed TARGET FIXTURE...: request bodies of captured fixtures into the corpus
  local target="$1"
  shift
  python3 - "fuzz/corpus/$target" "$@" <<'PY'
import base64, hashlib, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for fixture in sys.argv[2:]:
    for line in pathlib.Path(fixture).read_text().splitlines():
        if not line.strip():
            continue
        req = json.loads(line)
        enc = req.get("body_encoding")
        body = base64.b64decode(req["body"]) if enc == "base64" else req.get("body", "").encode()
        if body:
            (out / hashlib.sha1(body).hexdigest()).write_bytes(body)
PY
}

fixtures=tests/fixtures/real-clients
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  cp fuzz/regressions/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  case "$t" in
    native_beacon) seed "$t" "$fixtures/web-vitals.jsonl"; cp examples/beacons/*.json "fuzz/corpus/$t/" ;;
    faro) seed "$t" "$fixtures/faro.jsonl" ;;
    gunzip) seed "$t" "$fixtures/faro-gzip.jsonl" ;;
    otlp_json) seed "$t" "$fixtures/otlp-json.jsonl" ;;
    otlp_protobuf) seed "$t" "$fixtures/otlp-proto.jsonl" ;;
    elastic) seed "$t" "$fixtures/elastic-rum.jsonl" "$fixtures/elastic-rum-v3.jsonl" ;;
    boomerang) seed "$t" "$fixtures/boomerang.jsonl" ;;
  esac
  echo "== fuzzing $t for ${per_target}s"
  if ! (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$per_target" -max_len=262144 -rss_limit_mb=2048 -print_final_stats=1); then
    failed+=("$t")
    for crash in fuzz/artifacts/"$t"/*; do
      [ -f "$crash" ] && cp "$crash" "fuzz/regressions/$t/" && echo "saved $crash in fuzz/regressions/$t/"
    done
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "no crash in ${targets[*]}"
