#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every test (the browser
# loader's node tests; unit, property, whole-daemon against a real collector, captured-client
# replays).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export ROTEL_AGENT="$PWD/.tools/rotel/rotel-agent"
node --test loader/test/*.test.mjs
# Whole-daemon tests (floods, gzip bombs, correlation...) run against the release binary.
scripts/build-release.sh --bin rum-bridge
export RUM_BRIDGE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/rum-bridge"
# The demo backend the browser test drives (`cargo test` builds examples only as test harnesses).
cargo build --locked --example demo-shop
cargo test --all-targets --locked "$@"
