#!/usr/bin/env bash
# The main job end to end: producers publish runs for `lines` and `words` from sample receipts,
# the compactor publishes snapshot versions, and snapctl shows, verifies and queries them.
#
# By default on a private SeaweedFS on loopback (started and stopped here). With
# STRATA_STORE=file:///DIR, on the embedded store with no server.
set -euo pipefail
cd "$(dirname "$0")/.."
SNAPCTL=${SNAPCTL:-.build/release/snapctl}
OUT=${DEMO_OUT:-demo-out}
rm -rf "$OUT"; mkdir -p "$OUT"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Summaries on stdout; only notices and problems in the logs.
export STRATA_LOG_LEVEL=${STRATA_LOG_LEVEL:-notice}

if [ -z "${STRATA_STORE:-}" ]; then
  say "starting SeaweedFS on loopback"
  eval "$(Scripts/seaweedfs.sh start "$PWD/$OUT/weed" --watch $$)"
  trap 'Scripts/seaweedfs.sh stop "$PWD/$OUT/weed"' EXIT
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$STRATA_TEST_ENDPOINT"
  export STRATA_STORE=s3://strata-demo
  echo "endpoint $AWS_ENDPOINT_URL"
  $SNAPCTL store mb
fi
echo "store $STRATA_STORE"

say "probe: does the store enforce conditional writes?"
$SNAPCTL store probe

say "producers: one run per receipt image (lines and words)"
python3 Scripts/make-sample.py Demo/receipts.json "$OUT/sample"
for dir in "$OUT"/sample/*; do
  image=$(basename "$dir")
  $SNAPCTL produce --collection lines --input "$dir/lines.ndjson" --collection words --input "$dir/words.ndjson" \
    --label image_id="$image"
done

say "compactor: apply every pending run, publish once per collection"
$SNAPCTL compact --collection lines --collection words

say "published versions"
$SNAPCTL ls
$SNAPCTL versions lines
$SNAPCTL store get lines/snapshot/latest-pointer.txt -

if $SNAPCTL help verify >/dev/null 2>&1; then
  say "verify"
  $SNAPCTL verify
fi
if $SNAPCTL help query >/dev/null 2>&1; then
  say "query: the nearest neighbours of a total line"
  $SNAPCTL query lines --id "IMAGE#3f2b8c1e-6a4d-4e2f-9b7a-1c5d8e9f0a12#RECEIPT#00001#LINE#00011" -k 4
fi
say "done"
