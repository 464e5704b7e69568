#!/usr/bin/env bash
# bench/run.sh — imgfs against its baselines on the big corpus images, medians of several runs, written
# to BENCHMARKS.md. Needs root, FUSE and `make corpus CORPUS_STEPS=big` (1M-file and 4 GiB images).
# Usage: bench/run.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
CORPUS=${IMGFS_CORPUS:-/var/lib/imgfs-corpus}
BIN=$PWD/bin/imgfs
A=$CORPUS/artifacts
W=$(mktemp -d /var/tmp/imgfs-bench.XXXXXX)
MNT=$W/mnt; mkdir -p "$MNT"
OUT=${BENCH_OUT:-BENCHMARKS.md}
trap 'umount "$MNT" 2>/dev/null || true; rm -rf "$W"' EXIT
go build -o "$W/randread" ./bench/randread

for f in big-1m/docker-archive-uncompressed.tar big-1m/docker-archive-gzip.tar big-4g/docker-archive-uncompressed.tar big-4g/docker-archive-gzip.tar; do
  [[ -e $A/$f ]] || { echo "missing $A/$f: run 'make corpus CORPUS_STEPS=big'" >&2; exit 1; }
done

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# timeit CMD...: seconds of one run
timeit() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }
# med N CMD...: median seconds of N runs (a setup function `before` runs before each, untimed)
med() { local n=$1; shift; for _ in $(seq "$n"); do before; timeit "$@"; done | median; }
before() { :; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
fmt() { printf '%.3f' "$1"; }
daemon_pid() { pgrep -f "imgfs mount .*$MNT" | head -1; }
anon_kib() { awk '/RssAnon/ {print $2}' "/proc/$1/status"; }
mount_img() { "$BIN" mount --quiet --cache-dir "$1" "$2" "$MNT"; }
unmount_img() { "$BIN" unmount "$MNT"; while mountpoint -q "$MNT"; do sleep 0.05; done; }

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); echo "$1: imgfs $2, baseline $3, ratio $4 ($5)" >&2; }

# --- 1M entries: the layer as a file for tar -tf, and warm page cache for both ---
ARC=$A/big-1m/docker-archive-uncompressed.tar
LAYER=$(tar -tf "$ARC" | grep 'layer.tar$' | head -1)
tar -xf "$ARC" -C "$W" "$LAYER"
L1M=$W/$LAYER
cat "$ARC" "$L1M" >/dev/null
base=$(med "$RUNS" tar -tf "$L1M")
cold() { rm -rf "$W/cache"; }
before() { cold; }
t=$(med "$RUNS" bash -c "$(declare -f mount_img unmount_img); BIN=$BIN MNT=$MNT; mount_img $W/cache $ARC && unmount_img")
row "cold mount, 1,009,092-entry uncompressed layer (index build + mount + unmount)" "$(fmt "$t") s" "$(fmt "$base") s \`tar -tf\` of the layer" "$(ratio "$t" "$base")" "target ≤ 1.5"
before() { :; }
mount_img "$W/cache" "$ARC"; unmount_img   # leave a warm index
t=$(med "$RUNS" bash -c "$(declare -f mount_img unmount_img); BIN=$BIN MNT=$MNT; mount_img $W/cache $ARC && unmount_img")
row "warm remount, same layer (mount + unmount)" "$(fmt "$t") s" "-" "-" "target ≤ 0.1 s"

# find over a fresh mount (cold kernel caches: every entry is looked up through FUSE), then memory
t=$(for _ in $(seq "$RUNS"); do mount_img "$W/cache" "$ARC"; timeit find "$MNT" -printf ''; unmount_img; done | median)
base=$(med "$RUNS" tar -tf "$L1M")
row "find over a fresh 1M-entry mount (every entry looked up through FUSE)" "$(fmt "$t") s" "$(fmt "$base") s \`tar -tf\`" "$(ratio "$t" "$base")" "-"
mount_img "$W/cache" "$ARC"
pid=$(daemon_pid)
a0=$(anon_kib "$pid")
find "$MNT" -printf '' ; find "$MNT" -printf ''
a1=$(anon_kib "$pid")
find "$MNT" -type f -print0 | xargs -0 -n 2000 cat >/dev/null
a2=$(anon_kib "$pid")
unmount_img
row "memory of the mount daemon, 1M entries (RssAnon)" "$((a0/1024)) MiB mounted, $((a1/1024)) MiB after 2 walks, $((a2/1024)) MiB after reading every file" "-" "-" "target ≤ 32 MiB"

# --- gzip 1M layer: cold index build vs tar -tzf (decompress + list) ---
GZ=$A/big-1m/docker-archive-gzip.tar
GZL=$(tar -tf "$GZ" | grep '\.tar\.gz$' | head -1)
tar -xf "$GZ" -C "$W" "$GZL"
cat "$GZ" >/dev/null
base=$(med 3 tar -tzf "$W/$GZL")
before() { cold; }
t=$(med 3 bash -c "$(declare -f mount_img unmount_img); BIN=$BIN MNT=$MNT; mount_img $W/cache $GZ && unmount_img")
before() { :; }
row "cold mount, 1M-entry gzip layer (inflate + index + checkpoints)" "$(fmt "$t") s" "$(fmt "$base") s \`tar -tzf\`" "$(ratio "$t" "$base")" "target ≤ 1.5"
rm -f "$L1M" "$W/$GZL"

# --- 4 GiB member: sequential read vs cat ---
ARC=$A/big-4g/docker-archive-uncompressed.tar
F=$MNT/big/blob-4GiB.bin
mount_img "$W/cache" "$ARC"; unmount_img          # index once
dropcaches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# cold: nothing in the page cache, for imgfs and cat alike
before() { dropcaches; }
base=$(med "$RUNS" cat "$ARC")
t=$(for _ in $(seq "$RUNS"); do dropcaches; mount_img "$W/cache" "$ARC"; timeit cat "$F"; unmount_img; done | median)
row "sequential read of a 4 GiB member, cold caches" "$(fmt "$t") s" "$(fmt "$base") s \`cat\` of the archive" "$(ratio "$base" "$t") (speed)" "target ≥ 0.8"
before() { :; }
# warm archive: the archive is in the page cache, the mount's own cache is empty (every byte crosses FUSE)
cat "$ARC" >/dev/null
base=$(med "$RUNS" cat "$ARC")
t=$(for _ in $(seq "$RUNS"); do mount_img "$W/cache" "$ARC"; timeit cat "$F"; unmount_img; done | median)
row "sequential read, archive in the page cache, first read through the mount" "$(fmt "$t") s" "$(fmt "$base") s \`cat\` of the archive (memory copy)" "$(ratio "$base" "$t") (speed)" "FUSE round trips of 1 MiB bound this"
# repeat read: the mount keeps its page cache (FOPEN_KEEP_CACHE)
mount_img "$W/cache" "$ARC"; cat "$F" >/dev/null
t=$(med "$RUNS" cat "$F")
unmount_img
row "sequential read again, same mount (kernel page cache kept)" "$(fmt "$t") s" "$(fmt "$base") s \`cat\` of the archive" "$(ratio "$base" "$t") (speed)" "-"

# --- 4 GiB member in a gzip layer: sequential and random 4 KiB reads ---
ARC=$A/big-4g/docker-archive-gzip.tar
cat "$ARC" >/dev/null
mount_img "$W/cache" "$ARC"   # cold: builds the checkpoints
unmount_img
GZL=$(tar -tf "$ARC" | grep '\.tar\.gz$' | head -1)
base=$(med 3 bash -c "tar -xOf $ARC $GZL | gzip -dc")
t=$(for _ in $(seq 3); do mount_img "$W/cache" "$ARC"; timeit cat "$F"; unmount_img; done | median)
row "sequential read of the 4 GiB member in a gzip layer" "$(fmt "$t") s" "$(fmt "$base") s \`gzip -dc\` of the layer" "$(ratio "$base" "$t") (speed)" "-"
mount_img "$W/cache" "$ARC"
rr=$("$W/randread" -n 500 "$F")
unmount_img
mount_img "$W/cache" "$A/big-4g/docker-archive-uncompressed.tar"
rb=$("$W/randread" -n 500 "$F")
unmount_img
row "random 4 KiB reads, gzip layer (500 distinct blocks)" "$rr" "$rb (same file, uncompressed layer)" "-" "each read inflates at most one ~4 MiB span"

{
  echo "# Benchmarks"
  echo
  echo "Written by \`bench/run.sh\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB,"
  echo "$(uname -sr), $(go version | cut -d' ' -f3). Medians of $RUNS runs; baselines measured in"
  echo "the same run under the same conditions (page cache warm for both, or dropped for both on the 'cold caches' row)."
  echo "The machine is shared and noisy: treat differences under ~20% as noise."
  echo
  echo "| what | imgfs | baseline | ratio | note |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  cat bench/go-benchmarks.md
} >"$OUT"
echo "wrote $OUT" >&2
