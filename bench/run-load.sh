#!/usr/bin/env bash
# bench/run-load.sh — the fio jobs of the load test (integration/testdata/load.fio: four verifying
# random read/write jobs at once, two over files of the image that are copied up under load, two over
# new files) for SECS seconds on a writable imgfs mount, and in the same run on the kernel's overlayfs
# with the same files as its lower directory and on a plain directory of the host disk. Reports IOPS,
# the worst and the 99th-percentile completion latency and the daemon's peak memory; medians of RUNS
# runs, appended to BENCHMARKS.md. Needs root, FUSE, fio and jq; makes its own image (no corpus).
# Usage: bench/run-load.sh [RUNS] [SECS]   (default 3 runs of 20 s)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-20}
BIN=$PWD/bin/imgfs
JOBS=$PWD/integration/testdata/load.fio
OUT=${BENCH_OUT:-BENCHMARKS.md}
W=$(mktemp -d /var/tmp/imgfs-bench-load.XXXXXX) # no commas: it goes into overlay mount options
MNT=$W/mnt; KMNT=$W/kmnt; mkdir -p "$MNT" "$KMNT"
trap '"$BIN" unmount "$MNT" 2>/dev/null || true; umount "$KMNT" 2>/dev/null || true; rm -rf "$W"' EXIT
go build -o "$BIN" ./cmd/imgfs

# The image: fio/l0 and fio/l1, 24 MiB of random bytes each (the jobs work on their first 16 MiB).
mkdir -p "$W/lower/fio"
head -c 24M /dev/urandom >"$W/lower/fio/l0"
head -c 24M /dev/urandom >"$W/lower/fio/l1"
tar -C "$W/lower" -cf "$W/flat.tar" .
"$BIN" import -q --compression none -o "$W/img.tar" "$W/flat.tar" >/dev/null
"$BIN" inspect -q --cache-dir "$W/cache" "$W/img.tar" >/dev/null # index once, untimed
sync

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# fio JSON -> "iops worst_ms p99_ms fsync_ms" over all jobs, reads and writes (fsync: the slowest).
summary() {
  jq -r '([.jobs[].sync.lat_ns.max] | max / 1e6) as $f | [.jobs[] | .read, .write] |
    [(map(.iops) | add), (map(.clat_ns.max) | max / 1e6),
    (map(.clat_ns.percentile["99.000000"] // 0) | max / 1e6), $f] | @tsv' "$1"
}
runfio() { # DIR JSON
  DIR=$1 SIZE=16M RUNTIME=$SECS LOOPS=100000 fio --output-format=json --output="$2" "$JOBS" >/dev/null
}
# peak VmRSS (KiB) of a process, sampled every 20 ms until it exits or the file $W/stop appears
sample_rss() {
  local pid=$1 peak=0 v
  while [[ ! -e $W/stop ]] && v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null); do
    (( v > peak )) && peak=$v
    sleep 0.02
  done
  echo "$peak"
}

declare -A iops worst p99 fsync
rss=()
for r in $(seq "$RUNS"); do
  # imgfs, a fresh upper directory each run
  rm -rf "$W/up"
  "$BIN" mount -q --cache-dir "$W/cache" --upper "$W/up" "$W/img.tar" "$MNT"
  pid=$(pgrep -f "imgfs mount .*$MNT" | head -1)
  rm -f "$W/stop"; sample_rss "$pid" >"$W/rss" &
  sampler=$!
  runfio "$MNT/fio" "$W/imgfs.json"
  touch "$W/stop"; wait "$sampler"
  rss+=("$(( $(cat "$W/rss") / 1024 ))")
  echo "run $r imgfs: daemon peak VmRSS ${rss[-1]} MiB" >&2
  "$BIN" unmount "$MNT"; while mountpoint -q "$MNT"; do sleep 0.05; done
  # the kernel's overlayfs over the same layer, fresh upper and work directories
  rm -rf "$W/kup" "$W/kwork"; mkdir -p "$W/kup" "$W/kwork"
  mount -t overlay overlay -o "lowerdir=$W/lower,upperdir=$W/kup,workdir=$W/kwork" "$KMNT"
  runfio "$KMNT/fio" "$W/overlay.json"
  umount "$KMNT"
  # a plain directory on the host disk holding copies of the same files
  rm -rf "$W/plain"; cp -a "$W/lower" "$W/plain"; sync
  runfio "$W/plain/fio" "$W/plain.json"
  for k in imgfs overlay plain; do
    read -r i w p f < <(summary "$W/$k.json")
    iops[$k]+="$i "; worst[$k]+="$w "; p99[$k]+="$p "; fsync[$k]+="$f "
    echo "run $r $k: $i IOPS, worst $w ms, p99 $p ms, slowest fsync $f ms" >&2
  done
done

med() { tr ' ' '\n' | grep . | median; }
fmt() { printf '%.0f' "$1"; }
fmt1() { printf '%.1f' "$1"; }
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
declare -A M
for k in imgfs overlay plain; do
  M[$k.iops]=$(med <<<"${iops[$k]}"); M[$k.worst]=$(med <<<"${worst[$k]}"); M[$k.p99]=$(med <<<"${p99[$k]}")
  M[$k.fsync]=$(med <<<"${fsync[$k]}")
done
peak=$(printf '%s\n' "${rss[@]}" | median)
row() { # label key
  echo "| $1 | $(fmt "${M[$2.iops]}") | $(fmt1 "${M[$2.worst]}") ms | $(fmt1 "${M[$2.p99]}") ms | $(fmt1 "${M[$2.fsync]}") ms | $3 |"
}
{
  echo
  echo "## Writable mount under load"
  echo
  echo "Written by \`bench/run-load.sh $RUNS $SECS\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores (shared; load average"
  echo "$(cut -d' ' -f1-3 /proc/loadavg) when it finished), $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr); medians of $RUNS runs of $SECS s."
  echo "The jobs of \`integration/testdata/load.fio\` run at once: four fio jobs (psync, 50/50 random reads and"
  echo "writes of 4–64 KiB, fsync every 64 writes, each pass over 16 MiB then a crc32c verification of every"
  echo "block written), two over 24 MiB files of the image's (uncompressed) layer that are copied up by their"
  echo "first write, two over new files. IOPS include the verification reads. Baselines in the same run: the"
  echo "kernel's overlayfs with the same files as its lower directory, and a plain directory of the host disk"
  echo "($(findmnt -no FSTYPE -T "$W")). Latency is fio's completion latency (clat), worst and p99 over all jobs."
  echo
  echo "| where | IOPS | worst completion | p99 completion | slowest fsync | daemon peak VmRSS |"
  echo "|---|---|---|---|---|---|"
  row "imgfs writable mount" imgfs "$peak MiB"
  row "kernel overlayfs" overlay "-"
  row "plain $(findmnt -no FSTYPE -T "$W") directory" plain "-"
  echo
  echo "imgfs / overlayfs: IOPS $(ratio "${M[imgfs.iops]}" "${M[overlay.iops]}"), worst completion $(ratio "${M[imgfs.worst]}" "${M[overlay.worst]}")×, p99 $(ratio "${M[imgfs.p99]}" "${M[overlay.p99]}")×."
} >>"$OUT"
echo "appended to $OUT" >&2
