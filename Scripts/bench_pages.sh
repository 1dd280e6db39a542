#!/usr/bin/env bash
# Page-patch measurements (Docs/design/0002-page-patch-versions.md, "Measurements"): builds
# strata-pages-bench in release mode and runs it on 100k and 1M rows x 384 dims.
# Usage: Scripts/bench_pages.sh [ROWS...]   (default: 100000 1000000). Needs ~2.5x the 1M file on TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product strata-pages-bench >/dev/null
bin="$(swift build -c release --show-bin-path)/strata-pages-bench"
echo "machine: $(uname -srm), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%F)"
for rows in "${@:-100000 1000000}"; do
  for r in $rows; do "$bin" --rows "$r" --dim 384 --page-size "${PAGE_SIZE:-8192}" --compression "${COMPRESSION:-zlib1}"; echo; done
done
