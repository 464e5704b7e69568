#!/usr/bin/env bash
# bench/run-evidence.sh — the cost of an evidence mount: warm remounts (layers proven before, archive
# sha256 remembered by its identity) with --evidence and with --evidence --custody, against a plain
# warm remount in the same run; and the unmount of a recorded mount (the daemon hashes the archive
# again from its bytes before it records the end) against sha256sum of the archive. Medians of RUNS
# runs, appended to BENCHMARKS.md. Needs root and FUSE.
# Usage: bench/run-evidence.sh [RUNS] [ARCHIVE]   (default 5 runs of the corpus's docker-save-20.10.tar)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
ARCHIVE=${2:-${IMGFS_CORPUS:-/var/lib/imgfs-corpus}/artifacts/debian-layered/docker-save-20.10.tar}
BIN=$PWD/bin/imgfs
OUT=${BENCH_OUT:-BENCHMARKS.md}
W=$(mktemp -d /var/tmp/imgfs-bench-evidence.XXXXXX)
MNT=$W/mnt; mkdir -p "$MNT"
trap '"$BIN" unmount "$MNT" 2>/dev/null || true; rm -rf "$W"' EXIT
go build -o "$BIN" ./cmd/imgfs

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
C=$W/cache
s=$(now); "$BIN" mount -q --evidence --cache-dir "$C" "$ARCHIVE" "$MNT"; e=$(now); "$BIN" unmount "$MNT"
cold=$(echo "$e - $s" | bc | median)
: >"$W/plain"; : >"$W/evidence"; : >"$W/custody"; : >"$W/unmount"; : >"$W/sha"
for _ in $(seq "$RUNS"); do
  s=$(now); "$BIN" mount -q --cache-dir "$C" "$ARCHIVE" "$MNT"; e=$(now); "$BIN" unmount "$MNT"
  echo "$e - $s" | bc >>"$W/plain"
  s=$(now); "$BIN" mount -q --evidence --cache-dir "$C" "$ARCHIVE" "$MNT"; e=$(now); "$BIN" unmount "$MNT"
  echo "$e - $s" | bc >>"$W/evidence"
  s=$(now); "$BIN" mount -q --evidence --custody "$W/log" --cache-dir "$C" "$ARCHIVE" "$MNT"; e=$(now)
  "$BIN" unmount "$MNT"; f=$(now)
  echo "$e - $s" | bc >>"$W/custody"; echo "$f - $e" | bc >>"$W/unmount"
  s=$(now); sha256sum "$ARCHIVE" >/dev/null; e=$(now)
  echo "$e - $s" | bc >>"$W/sha"
done
"$BIN" custody verify "$W/log" >/dev/null
P=$(median <"$W/plain"); E=$(median <"$W/evidence"); K=$(median <"$W/custody"); U=$(median <"$W/unmount"); S=$(median <"$W/sha")
{
  echo
  echo "## Evidence mounts"
  echo
  echo "Written by \`bench/run-evidence.sh $RUNS\` on $(date -u +%F). Machine: $(nproc) cores, $(uname -r), $(go env GOVERSION)."
  echo "Archive: $(basename "$ARCHIVE") ($(stat -c %s "$ARCHIVE") bytes). Medians of $RUNS runs, interleaved; mount = the command until the mount is ready."
  echo
  echo "| what | imgfs | baseline | ratio | note |"
  echo "|---|---|---|---|---|"
  echo "| cold --evidence mount (layers proven, archive hashed) | ${cold} s | - | - | one run |"
  echo "| warm --evidence remount | $E s | $P s plain warm remount | $(echo "scale=2; $E / $P" | bc) | target ≤ 0.1 s |"
  echo "| warm --evidence --custody remount (record appended, fsync) | $K s | $P s plain warm remount | $(echo "scale=2; $K / $P" | bc) | target ≤ 0.1 s |"
  echo "| imgfs unmount of a recorded mount (archive hashed again, end recorded) | $U s | $S s \`sha256sum\` of the archive | $(echo "scale=2; $U / $S" | bc) | - |"
} | tee -a "$OUT"
