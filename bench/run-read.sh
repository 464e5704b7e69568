#!/usr/bin/env bash
# bench/run-read.sh — 16 parallel readers over one uncompressed and one gzip layer of a real mount, against
# the same reads of the same files extracted by tar -x on the host disk; worst read latency and the
# daemon's peak memory. Medians of RUNS runs, appended to BENCHMARKS.md. Needs root and FUSE; makes its
# own images (no corpus).
# Usage: bench/run-read.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
BIN=$PWD/bin/imgfs
OUT=${BENCH_OUT:-BENCHMARKS.md}
W=$(mktemp -d /var/tmp/imgfs-bench-read.XXXXXX)
MNT=$W/mnt; mkdir -p "$MNT"
trap '"$BIN" unmount "$MNT" 2>/dev/null || true; rm -rf "$W"' EXIT
go build -o "$BIN" ./cmd/imgfs
go build -o "$W/parread" ./bench/parread

# Plain layer: 16 random files of 16 MiB. Gzip layer: 16 files of 4 MiB of base64 text of random bytes (compresses ~4:3).
mkdir -p "$W/src/plain" "$W/src/gzip"
for i in $(seq -w 0 15); do
  head -c 16M /dev/urandom >"$W/src/plain/f$i"
  head -c 3M /dev/urandom | base64 -w 76 >"$W/src/gzip/f$i"
done
for l in plain gzip; do
  (cd "$W/src/$l" && sha256sum f*) >"$W/$l.sums"
  tar -C "$W/src/$l" -cf "$W/$l.flat.tar" .
  mkdir -p "$W/ext/$l"; tar -xf "$W/$l.flat.tar" -C "$W/ext/$l"
done
comp() { [[ $1 == plain ]] && echo none || echo gzip; }
for l in plain gzip; do "$BIN" import -q --compression "$(comp $l)" -o "$W/$l.img.tar" "$W/$l.flat.tar" >/dev/null; done
rm -rf "$W/src"; sync

daemon_pid() { pgrep -f "imgfs mount .*$MNT" | head -1; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

rows=()
for l in plain gzip; do
  "$BIN" inspect -q --cache-dir "$W/cache" "$W/$l.img.tar" >/dev/null   # index once, untimed
  cat "$W/$l.img.tar" >/dev/null
  m=(); b=()
  for _ in $(seq "$RUNS"); do
    "$BIN" mount -q --cache-dir "$W/cache" "$W/$l.img.tar" "$MNT"
    m+=("$("$W/parread" -readers 16 -pid "$(daemon_pid)" "$W/$l.sums" "$MNT")")
    "$BIN" unmount "$MNT"; while mountpoint -q "$MNT"; do sleep 0.05; done
    b+=("$("$W/parread" -readers 16 "$W/$l.sums" "$W/ext/$l")")
    echo "$l mount: ${m[-1]}" >&2; echo "$l ext4:  ${b[-1]}" >&2
  done
  med() { local -n arr=$1; for x in "${arr[@]}"; do field "$2" <<<"$x"; done | median; }
  name=$([[ $l == plain ]] && echo "16 × 16 MiB, uncompressed layer" || echo "16 × 4 MiB base64 text, gzip layer")
  rows+=("| 16 readers, $name | $(med m worst_ms) ms / $(med m p99_ms) ms | $(med b worst_ms) ms / $(med b p99_ms) ms | $(med m mibps) / $(med b mibps) MiB/s | $(med m rss_mib) MiB ($(med m anon_mib) MiB anon) |")
done

{
  echo
  echo "## Parallel reads"
  echo
  echo "Written by \`bench/run-read.sh\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB,"
  echo "$(uname -sr); medians of $RUNS runs. Each of 16 readers (\`bench/parread\`) reads every file once in its own order,"
  echo "odd readers in shuffled 128 KiB chunks, even ones sequentially; after each file it drops the file's pages"
  echo "(fadvise DONTNEED), so the next reader goes to the daemon again; every file's sha256 is checked."
  echo "Baseline: the same program over the same files extracted by \`tar -x\` into $(findmnt -no FSTYPE -T "$W") in the"
  echo "same run (there DONTNEED sends the next reader to the disk; through the mount the archive's own pages stay cached)."
  echo
  echo "| what | worst / p99 read, mount | worst / p99 read, tar -x tree | throughput, mount / tree | daemon peak VmRSS |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >>"$OUT"
echo "appended to $OUT" >&2
