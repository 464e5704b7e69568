#!/usr/bin/env bash
# bench/run-timeline.sh — `imgfs timeline` of the 1M-entry image against tar doing the same passes, medians
# of several runs (layer indexes warm: the timeline's own cost). Needs `make corpus CORPUS_STEPS=big`.
# Baselines, same run, page cache warm for both: `tar -tvf` of the layer (every header, like --no-md5)
# and `tar -xOf LAYER | md5sum` (every file's data through MD5, like the default).
# Usage: bench/run-timeline.sh [RUNS]   (default 3); prints Markdown rows.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
CORPUS=${IMGFS_CORPUS:-/var/lib/imgfs-corpus}
A=$CORPUS/artifacts/big-1m
W=$(mktemp -d /var/tmp/imgfs-bench-timeline.XXXXXX)
trap 'rm -rf "$W"' EXIT
go build -o "$W/imgfs" ./cmd/imgfs
BIN=$W/imgfs
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timeit() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }
med() { local n=$1; shift; for _ in $(seq "$n"); do timeit "$@"; done | median; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
fmt() { printf '%.3f' "$1"; }

for kind in uncompressed gzip; do
  ARC=$A/docker-archive-$kind.tar
  LAYER=$(tar -tf "$ARC" | grep -E 'layer.tar$|\.tar(\.gz)?$' | grep -v '^manifest' | head -1)
  tar -xf "$ARC" -C "$W" "$LAYER"
  L=$W/$LAYER
  z=""; [[ $kind == gzip ]] && z=z
  "$BIN" inspect -q --cache-dir "$W/cache" "$ARC" >/dev/null   # index once: the rows time the timeline alone
  cat "$ARC" "$L" >/dev/null
  t=$(med "$RUNS" "$BIN" timeline -q --no-md5 --cache-dir "$W/cache" -o "$W/body" "$ARC")
  b=$(med "$RUNS" tar -t${z}vf "$L")
  echo "| timeline --no-md5, 1,009,092-member $kind layer | $(fmt "$t") s | $(fmt "$b") s \`tar -t${z}vf\` | $(ratio "$t" "$b") | headers only |"
  t=$(med "$RUNS" "$BIN" timeline -q --cache-dir "$W/cache" -o "$W/body" "$ARC")
  b=$(med "$RUNS" bash -c "tar -x${z}Of '$L' | md5sum")
  echo "| timeline (MD5 of every file), same layer | $(fmt "$t") s | $(fmt "$b") s \`tar -x${z}Of \| md5sum\` | $(ratio "$t" "$b") | one pass over the data |"
  rm -f "$L" "$W/body"
done
