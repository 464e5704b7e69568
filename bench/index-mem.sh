#!/usr/bin/env bash
# bench/index-mem.sh — peak resident memory (VmHWM, via /usr/bin/time %M) and time to ready of cold
# foreground mounts: each binary given, interleaved, RUNS rounds, on each archive given.
# Usage: bench/index-mem.sh RUNS "BIN1 BIN2..." ARCHIVE...   (needs root and FUSE)
set -euo pipefail
RUNS=$1; BINS=$2; shift 2
W=$(mktemp -d /var/tmp/imgfs-mem.XXXXXX)
trap 'for m in "$W"/*/mnt; do umount "$m" 2>/dev/null || true; done; rm -rf "$W"' EXIT
one() { # BIN ARCHIVE: "maxrss_kib seconds"
  local d; d=$(mktemp -d "$W/run.XXXX"); mkdir -p "$d/mnt"
  local t0 t1 p; t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$d/time" "$1" mount -f --quiet --cache-dir "$d/cache" "$2" "$d/mnt" &
  p=$!
  until mountpoint -q "$d/mnt"; do sleep 0.02; kill -0 $p 2>/dev/null || { echo "mount failed" >&2; exit 1; }; done
  t1=$(date +%s.%N)
  "$1" unmount "$d/mnt"; wait $p
  echo "$(cat "$d/time") $(echo "$t1 - $t0" | bc -l)"
  rm -rf "$d"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for a in "$@"; do
  declare -A rss=() sec=()
  for _ in $(seq "$RUNS"); do
    for b in $BINS; do read -r r s < <(one "$b" "$a"); rss[$b]+="$r "; sec[$b]+="$s "; done
  done
  for b in $BINS; do
    printf '%s %s: VmHWM median %s MiB (runs: %s KiB), ready median %.2f s\n' "$(basename "$a")" "$b" \
      "$(echo ${rss[$b]} | tr ' ' '\n' | median | awk '{printf "%.1f", $1/1024}')" "${rss[$b]}" \
      "$(echo ${sec[$b]} | tr ' ' '\n' | median)"
  done
  unset rss sec
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
