#!/usr/bin/env bash
# Makes a local Debian bookworm base image for podman where no registry is reachable
# (../shared/CONTAINERS.md): debootstrap minbase from the Debian mirror apt uses, then
# `podman import`. Idempotent: does nothing when the image exists.
#   Scripts/container-base.sh [IMAGE]     (default localhost/strata-base:bookworm)
set -euo pipefail
image="${1:-localhost/strata-base:bookworm}"
podman="podman --runtime runc --cgroup-manager cgroupfs"
if $podman image exists "$image"; then echo "$image"; exit 0; fi
mirror=$(grep -rhE '^(deb |URIs:)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
           | grep -oE 'https?://[^ ]*debian[^ ]*' | grep -v -e security -e snapshot | head -1 || true)
mirror="${mirror:-http://deb.debian.org/debian}"
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
$podman import "$work/rootfs.tar" "$image" >/dev/null
echo "$image"
