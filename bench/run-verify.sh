#!/usr/bin/env bash
# bench/run-verify.sh — `imgfs verify` of the big corpus images (4 GiB file, 1M entries; docker-archive gzip
# and uncompressed) against `sha256sum` of the same blobs (their byte ranges of the archive), in the same
# run: the slowest single blob and the sum over the blobs; also `openssl dgst -sha256` (SHA-NI) of the
# slowest blob, and for gzip layers `pigz -dc` (inflating alone, which proving the diff_id needs). verify is timed with an empty cache (the proof is also the index build)
# and with a warm one (the table is cached; verify still hashes every byte). Medians of RUNS runs; the
# section "verify" is appended to BENCHMARKS.md. Needs the big corpus (make corpus CORPUS_STEPS=big).
# Usage: bench/run-verify.sh [RUNS]   (default 3; VERIFY_ARCHIVES="big-1m/… …" picks the archives)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
BIN=$PWD/bin/imgfs
OUT=${BENCH_OUT:-BENCHMARKS.md}
CORPUS=${IMGFS_CORPUS:-/var/lib/imgfs-corpus}
W=$(mktemp -d /var/tmp/imgfs-bench-verify.XXXXXX)
trap 'rm -rf "$W"' EXIT
go build -o "$BIN" ./cmd/imgfs

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l | xargs printf '%.2f\n'; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }

rows=()
# VERIFY_ARCHIVES overrides the list (paths under $CORPUS/artifacts).
read -r -a archives <<<"${VERIFY_ARCHIVES:-big-4g/docker-archive-uncompressed.tar big-4g/docker-archive-gzip.tar big-1m/docker-archive-uncompressed.tar big-1m/docker-archive-gzip.tar}"
for a in "${archives[@]}"; do
  arc=$CORPUS/artifacts/$a
  [[ -f $arc ]] || { echo "missing $arc (make corpus CORPUS_STEPS=big)" >&2; exit 1; }
  # The blobs verify reads (config and layers): offset and size in the tar, from verify's own report.
  "$BIN" verify --json -q --cache-dir "$W/probe" "$arc" >"$W/probe.json"
  mapfile -t blobs < <(jq -r 'select(.kind == "layer" or .kind == "config") | (.where | sub(".* at offset "; "")) + " " +
    ((.checks[] | select(.claim == "size") | .actual) // "0") + " " + .kind' "$W/probe.json")
  rm -rf "$W/probe"
  # blob SUM: hash the bytes at OFF, SIZE long, of the archive with SUM (sha256sum, or openssl's SHA-NI code).
  blob() { dd if="$arc" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=1M status=none | $1 >/dev/null; }
  cat "$arc" >/dev/null
  cold=(); warm=(); slow=(); total=(); oslow=(); dec=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$W/cache"
    cold+=("$(secs "$BIN" verify -q --cache-dir "$W/cache" "$arc")")
    warm+=("$(secs "$BIN" verify -q --cache-dir "$W/cache" "$arc")")
    worst=0; sum=0; ow=0; d=0; note=""
    for bl in "${blobs[@]}"; do
      read -r off size kind <<<"$bl"
      t=$(secs blob sha256sum "$off" "$size")
      sum=$(echo "$sum + $t" | bc -l)
      (( $(echo "$t > $worst" | bc -l) )) && worst=$t
      t=$(secs blob "openssl dgst -sha256" "$off" "$size")
      (( $(echo "$t > $ow" | bc -l) )) && ow=$t
      if [[ $a == *gzip* && $kind == layer ]]; then
        d=$(echo "$d + $(secs blob "pigz -dc" "$off" "$size")" | bc -l)   # inflate alone, output discarded
        note="; pigz -dc $d s"
      fi
    done
    slow+=("$worst"); total+=("$sum"); oslow+=("$ow"); [[ -n $note ]] && dec+=("$d")
    echo "$a: verify cold ${cold[-1]} s, warm ${warm[-1]} s; sha256sum slowest $worst s, sum $sum s; openssl slowest $ow s$note" >&2
  done
  mc=$(printf '%s\n' "${cold[@]}" | median); mw=$(printf '%s\n' "${warm[@]}" | median)
  ms=$(printf '%s\n' "${slow[@]}" | median); mt=$(printf '%s\n' "${total[@]}" | median)
  mo=$(printf '%s\n' "${oslow[@]}" | median)
  md="-"; [[ ${#dec[@]} -gt 0 ]] && md="$(printf '%s\n' "${dec[@]}" | median) s"
  size=$(stat -c %s "$arc" | numfmt --to=iec)
  rows+=("| \`$a\` ($size) | $mc s | $mw s | $ms s | $mt s | $mo s | $md | $(ratio "$mw" "$ms") / $(ratio "$mw" "$mo") | $(ratio "$mc" "$ms") |")
done

{
  echo
  echo "## verify"
  echo
  echo "Written by \`bench/run-verify.sh\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
  echo "$(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr); load average at the end $(cut -d' ' -f1-3 /proc/loadavg); medians of $RUNS runs, page cache warm."
  echo "Command: \`imgfs verify -q --cache-dir C ARCHIVE\`,"
  echo "cold = empty cache (the proof is also the index build), warm = tables cached (every byte still hashed)."
  echo "Baselines, same run, over the same bytes of the archive (\`dd iflag=skip_bytes,count_bytes\` of each blob's range into"
  echo "the hasher): \`sha256sum\` (coreutils, no SHA extensions) of the slowest blob and summed over config and layers; \`openssl"
  echo "dgst -sha256\` (SHA-NI) of the slowest blob; for gzip layers \`pigz -dc\` (inflate alone: one core, as any gzip)."
  echo
  echo "| archive | verify cold | verify warm | sha256sum slowest blob | sha256sum all blobs | openssl slowest blob | pigz -dc | warm ÷ slowest (sha256sum / openssl) | cold ÷ sha256sum slowest |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >>"$OUT"
echo "appended to $OUT" >&2
