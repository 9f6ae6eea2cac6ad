#!/usr/bin/env bash
# The one release build: the container images (docker/Dockerfile, docker/demo-shop.Dockerfile)
# and the load test (scripts/load.sh) all build through this script, so what is measured is what
# ships. Extra arguments go to cargo, e.g. `scripts/build-release.sh --example demo-shop`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo build --release --locked "$@"
