#!/usr/bin/env bash
# install-deps.sh — install the Debian packages imgfs's tests and demo need, when missing.
# Runs as root on Debian (CI and developer machines); prints what it installs.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have fusermount3 || need+=(fuse3)
have skopeo      || need+=(skopeo)
have umoci       || need+=(umoci)
have getfattr    || need+=(attr)
have setfacl     || need+=(acl)
have pigz        || need+=(pigz)
have zstd        || need+=(zstd)
have bsdtar      || need+=(libarchive-tools)
have jq          || need+=(jq)
have fio         || need+=(fio)
have mactime     || need+=(sleuthkit)
have hashdeep    || need+=(hashdeep)
have docker-registry || need+=(docker-registry)
have hyperfine   || [[ ${IMGFS_BENCH:-0} == 0 ]] || need+=(hyperfine)
if [[ ${#need[@]} -eq 0 ]]; then exit 0; fi
if [[ $(id -u) != 0 ]]; then
  echo "install-deps: missing ${need[*]}; run as root or install them (Debian package names)" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
