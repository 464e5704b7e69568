#!/usr/bin/env bash
# bench/run-hashes.sh — `imgfs hashes` of the big corpus images against hashdeep (md5 + sha256, as many
# threads as cores, its default) over the same files unpacked by tar -x, and over a mount of the
# image, in the same run, medians of RUNS. The layer indexes are warm (built once before timing: the
# cost measured is reading and hashing); the page cache is warm for every side (each is run once
# untimed first). Prints a markdown table for BENCHMARKS.md.
# Needs root, FUSE, hashdeep and `make corpus CORPUS_STEPS=big`. Usage: bench/run-hashes.sh [RUNS] (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
CORPUS=${IMGFS_CORPUS:-/var/lib/imgfs-corpus}
A=$CORPUS/artifacts
W=$(mktemp -d /var/tmp/imgfs-bench-hashes.XXXXXX)
MNT=$W/mnt
mkdir -p "$MNT"
trap 'umount "$MNT" 2>/dev/null || true; rm -rf "$W"' EXIT
go build -o "$W/imgfs" ./cmd/imgfs
BIN=$W/imgfs

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timeit() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }
med() { local n=$1; shift; "$@" >/dev/null; for _ in $(seq "$n"); do timeit "$@"; done | median; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
fmt() { printf '%.2f' "$1"; }

echo "| image | imgfs hashes | hashdeep -r, tar -x'd tree | ratio | hashdeep -o f -r, over the mount | ratio |"
echo "|---|---|---|---|---|---|"
for img in big-1m big-4g; do
  unc=$A/$img/docker-archive-uncompressed.tar
  tree=$W/tree
  rm -rf "$tree"; mkdir -p "$tree"
  layer=$(tar -tf "$unc" | grep 'layer.tar$' | head -1)
  tar -xOf "$unc" "$layer" | tar -x -C "$tree"
  base=$(med "$RUNS" hashdeep -c md5,sha256 -r "$tree")
  for arc in docker-archive-uncompressed.tar docker-archive-gzip.tar; do
    "$BIN" mount --quiet --cache-dir "$W/cache" "$A/$img/$arc" "$MNT"
    viamnt=$(med "$RUNS" hashdeep -c md5,sha256 -o f -r "$MNT")
    "$BIN" unmount "$MNT"
    while mountpoint -q "$MNT"; do sleep 0.05; done
    t=$(med "$RUNS" "$BIN" hashes --quiet --cache-dir "$W/cache" -o "$W/out.hashdeep" "$A/$img/$arc")
    echo "| $img $arc | $(fmt "$t") s | $(fmt "$base") s | $(ratio "$t" "$base") | $(fmt "$viamnt") s | $(ratio "$t" "$viamnt") |"
  done
  rm -rf "$tree"
done
