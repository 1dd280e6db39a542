#!/usr/bin/env bash
# make bench: release build, then every benchmark; results in bench-out/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 Scripts/bench.py "$@"
