#!/usr/bin/env bash
# bench/run-verify.sh — `imgfs verify` of the big corpus images (4 GiB file, 1M entries; docker-archive gzip
# and uncompressed) against `sha256sum` of the same blobs (extracted from the archive with tar), in the same
# run: the slowest single blob and the sum over the blobs; for gzip layers also `pigz -dc | sha256sum` (what
# proving the diff_id alone costs). verify is timed with an empty cache (the proof is also the index build)
# and with a warm one (the table is cached; verify still hashes every byte). Medians of RUNS runs; the
# section "verify" is appended to BENCHMARKS.md. Needs the big corpus (make corpus CORPUS_STEPS=big).
# Usage: bench/run-verify.sh [RUNS]   (default 3)
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
for a in big-4g/docker-archive-uncompressed.tar big-4g/docker-archive-gzip.tar \
         big-1m/docker-archive-uncompressed.tar big-1m/docker-archive-gzip.tar; do
  arc=$CORPUS/artifacts/$a
  [[ -f $arc ]] || { echo "missing $arc (make corpus CORPUS_STEPS=big)" >&2; exit 1; }
  # The blobs verify reads (config and layers), by member name, extracted for sha256sum.
  ex=$W/extract; rm -rf "$ex"; mkdir -p "$ex"
  "$BIN" verify --json -q --cache-dir "$W/probe" "$arc" >"$W/probe.json"
  mapfile -t members < <(jq -r 'select(.where != null and (.kind == "layer" or .kind == "config")) | .where | sub(".*: member "; "") | sub(" at offset.*"; "")' "$W/probe.json")
  tar -xf "$arc" -C "$ex" "${members[@]}"
  mapfile -t layers < <(jq -r 'select(.kind == "layer") | .where | sub(".*: member "; "") | sub(" at offset.*"; "")' "$W/probe.json")
  cat "$arc" >/dev/null; sync
  cold=(); warm=(); slow=(); total=(); dec=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$W/cache"
    cold+=("$(secs "$BIN" verify -q --cache-dir "$W/cache" "$arc")")
    warm+=("$(secs "$BIN" verify -q --cache-dir "$W/cache" "$arc")")
    worst=0; sum=0
    for m in "${members[@]}"; do
      t=$(secs sha256sum "$ex/$m")
      sum=$(echo "$sum + $t" | bc -l)
      (( $(echo "$t > $worst" | bc -l) )) && worst=$t
    done
    slow+=("$worst"); total+=("$sum")
    note=""
    if [[ $a == *gzip* ]]; then
      d=0
      for m in "${layers[@]}"; do d=$(echo "$d + $(secs sh -c "pigz -dc '$ex/$m' | sha256sum")" | bc -l); done
      dec+=("$d"); note="; pigz -dc | sha256sum $d s"
    fi
    echo "$a: verify cold ${cold[-1]} s, warm ${warm[-1]} s; sha256sum slowest $worst s, sum $sum s$note" >&2
  done
  mc=$(printf '%s\n' "${cold[@]}" | median); mw=$(printf '%s\n' "${warm[@]}" | median)
  ms=$(printf '%s\n' "${slow[@]}" | median); mt=$(printf '%s\n' "${total[@]}" | median)
  md="-"; [[ ${#dec[@]} -gt 0 ]] && md="$(printf '%s\n' "${dec[@]}" | median) s"
  size=$(stat -c %s "$arc" | numfmt --to=iec)
  rows+=("| \`$a\` ($size) | $mc s | $mw s | $ms s | $mt s | $md | $(ratio "$mc" "$ms") / $(ratio "$mw" "$ms") | $(ratio "$mw" "$mt") |")
  rm -rf "$ex"
done

{
  echo
  echo "## verify"
  echo
  echo "Written by \`bench/run-verify.sh\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
  echo "$(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr); medians of $RUNS runs, page cache warm. Command: \`imgfs verify -q --cache-dir C ARCHIVE\`,"
  echo "cold = empty cache (the proof is also the index build), warm = tables cached (every byte still hashed)."
  echo "Baselines, same run: \`sha256sum\` of the same blobs extracted from the archive (the slowest blob, and the sum over"
  echo "config and layers); for gzip, \`pigz -dc BLOB | sha256sum\` (the diff_id alone: gzip inflates on one core)."
  echo
  echo "| archive | verify cold | verify warm | sha256sum slowest blob | sha256sum all blobs | pigz -dc \\| sha256sum | cold / warm ÷ slowest | warm ÷ all |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >>"$OUT"
echo "appended to $OUT" >&2
