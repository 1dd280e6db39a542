#!/usr/bin/env bash
# Builds Infra/Dockerfile.runtime around a host-built snapctl and runs the compactor in it as
# non-root against an S3 endpoint on the host (--network=host), per ../shared/CONTAINERS.md.
#   Scripts/container-smoke.sh BINARY BASE_IMAGE OUTDIR COLLECTION EXPECTED_RUNS
# The store and credentials come from the environment (STRATA_STORE, AWS_*). Writes into OUTDIR:
# uid, metrics.txt (a scrape once EXPECTED_RUNS runs are applied), health.txt, exit-code, logs.txt.
# Every podman call writes to files (never to a pipe: conmon keeps a container's stdout open).
set -euo pipefail
binary="$1"; base="$2"; out="$3"; collection="$4"; expected="$5"
podman=(podman --runtime runc --cgroup-manager cgroupfs)
ulimits=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
root="$(cd "$(dirname "$0")/.." && pwd)"
tag="localhost/strata-smoke:$$"
name="strata-smoke-$$-$RANDOM"
ctx="$out/context"
mkdir -p "$ctx"
cp "$binary" "$ctx/snapctl"
cp "$root/Infra/Dockerfile.runtime" "$ctx/Dockerfile"
cleanup() {
  timeout 60 "${podman[@]}" rm -f "$name" >/dev/null 2>&1 </dev/null || true
  timeout 60 "${podman[@]}" rmi -f "$tag" >/dev/null 2>&1 </dev/null || true
}
trap cleanup EXIT
step() { echo "container-smoke: $*" >&2; }

step "build $tag"
timeout 600 "${podman[@]}" build --format docker -q "${ulimits[@]}" --build-arg "BASE=$base" -t "$tag" "$ctx" \
  >"$out/build.txt" 2>&1 </dev/null || { cat "$out/build.txt" >&2; exit 1; }
envs=()
for k in STRATA_STORE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION AWS_ENDPOINT_URL; do
  [ -n "${!k:-}" ] && envs+=(-e "$k")
done
step "run $name"
timeout 120 "${podman[@]}" run -d --name "$name" --network=host "${ulimits[@]}" "${envs[@]}" \
  -e STRATA_METRICS_ADDR=127.0.0.1:0 "$tag" compactor --collections "$collection" --poll 0.5 \
  >"$out/run.txt" 2>&1 </dev/null || { cat "$out/run.txt" >&2; exit 1; }
timeout 60 "${podman[@]}" exec "$name" id -u >"$out/uid" 2>"$out/exec.err" </dev/null

address=""
for _ in $(seq 1 600); do
  timeout 30 "${podman[@]}" logs "$name" >"$out/logs.txt" 2>&1 </dev/null || true
  address=$(grep -o '"address":"[^"]*"' "$out/logs.txt" | head -1 | cut -d'"' -f4 || true)
  [ -n "$address" ] && break
  sleep 0.2
done
[ -n "$address" ] || { step "no metrics address in the logs"; cat "$out/logs.txt" >&2; exit 1; }
step "metrics at $address"
for _ in $(seq 1 600); do
  curl -fsS "http://$address/metrics" >"$out/metrics.txt" 2>/dev/null </dev/null || true
  applied=$(grep "^strata_runs_applied_total{collection=\"$collection\"}" "$out/metrics.txt" | awk '{print $2}' || true)
  [ "${applied:-0}" = "$expected" ] && break
  sleep 0.2
done
# The image's HEALTHCHECK command, by hand (no systemd here to schedule health checks).
timeout 60 "${podman[@]}" exec "$name" /usr/local/bin/snapctl health --url "http://$address/readyz" \
  >"$out/health.txt" 2>&1 </dev/null && echo 0 >"$out/health-code" || echo $? >"$out/health-code"
step "stop (SIGTERM)"
timeout 120 "${podman[@]}" stop -t 60 "$name" >"$out/stop.txt" 2>&1 </dev/null
timeout 60 "${podman[@]}" inspect "$name" --format '{{.State.ExitCode}}' >"$out/exit-code" 2>&1 </dev/null
timeout 30 "${podman[@]}" logs "$name" >"$out/logs.txt" 2>&1 </dev/null || true
step "done: exit $(cat "$out/exit-code")"
