#!/usr/bin/env bash
# bench/run-walk.sh — walks (find -type f), reads of every small file and ls -l of a large directory
# through an imgfs mount, against the kernel's overlayfs over the same tree extracted to the host disk,
# that tree itself, and a tmpfs copy: one run, interleaved (each round times every system in turn),
# medians of RUNS rounds, warm caches (each timed command runs once, untimed, right before). Needs root
# and FUSE. Makes its own images: 100,000 files of 1–4 KiB, and a directory of 200,000 entries; adds
# the corpus's 1M-file image (big-1m) when it is there. The section it writes replaces its own in
# BENCHMARKS.md.
# Usage: bench/run-walk.sh [RUNS]   (default 3)
#   BASE_BIN=/path/to/imgfs  also times another imgfs binary (e.g. an older build), as "imgfs before";
#   BASE_LABEL says what it is (default: its path)
#   SETS="tree100k flat200k big1m"  the images to use;  TMPFS_1M=1  also copies the 1M tree to tmpfs (~5 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
CORPUS=${IMGFS_CORPUS:-/var/lib/imgfs-corpus}
BIN=$PWD/bin/imgfs
OUT=${BENCH_OUT:-BENCHMARKS.md}
SETS=${SETS:-tree100k flat200k big1m}
W=$(mktemp -d /var/tmp/imgfs-bench-walk.XXXXXX)
go build -o "$BIN" ./cmd/imgfs
go build -o "$W/gentree" ./bench/gentree

systems=(imgfs)
[[ -n ${BASE_BIN:-} ]] && systems+=(before)
systems+=(overlayfs ext4 tmpfs)
mnts=()
cleanup() {
  for m in "${mnts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }
fmt() { printf '%.3f' "$1"; }
waitgone() { while mountpoint -q "$1"; do sleep 0.05; done; }

# prepare SET: an image ($W/SET.img.tar or the corpus's), the tree extracted to the host disk
# ($W/ext4/SET), a tmpfs copy ($W/tmpfs/SET), and mounts of all of them; sets root[SYSTEM].
declare -A root
prepare() {
  local set=$1 img flat
  case $set in
    tree100k) flat=$W/$set.tar; "$W/gentree" -files 100000 -per 100 -group 100 -min 1024 -max 4096 >"$flat" ;;
    flat200k) flat=$W/$set.tar; "$W/gentree" -flat 200000 -flatmax 64 >"$flat" ;;
    big1m)
      img=$CORPUS/artifacts/big-1m/docker-archive-uncompressed.tar
      [[ -e $img ]] || return 1
      local layer; layer=$(tar -tf "$img" | grep 'layer.tar$' | head -1)
      flat=$W/$set.tar; tar -xOf "$img" "$layer" >"$flat" ;;
  esac
  if [[ -z ${img:-} ]]; then
    img=$W/$set.img.tar
    "$BIN" import -q --compression none -o "$img" "$flat" >/dev/null
  fi
  mkdir -p "$W/ext4/$set" "$W/empty" "$W/mnt/ovl-$set" "$W/mnt/imgfs-$set"
  tar -xf "$flat" -C "$W/ext4/$set"
  root[ext4]=$W/ext4/$set
  if [[ $set != big1m || ${TMPFS_1M:-0} == 1 ]]; then
    mkdir -p "$W/tmpfs/$set"; mount -t tmpfs -o size=8g tmpfs "$W/tmpfs/$set"; mnts+=("$W/tmpfs/$set")
    tar -xf "$flat" -C "$W/tmpfs/$set"
    root[tmpfs]=$W/tmpfs/$set
  else
    root[tmpfs]=
  fi
  rm -f "$flat"
  mount -t overlay overlay -o "ro,lowerdir=$W/ext4/$set:$W/empty" "$W/mnt/ovl-$set"; mnts+=("$W/mnt/ovl-$set")
  root[overlayfs]=$W/mnt/ovl-$set
  "$BIN" mount -q --cache-dir "$W/cache" "$img" "$W/mnt/imgfs-$set"; mnts+=("$W/mnt/imgfs-$set")
  root[imgfs]=$W/mnt/imgfs-$set
  if [[ -n ${BASE_BIN:-} ]]; then
    mkdir -p "$W/mnt/before-$set"
    "$BASE_BIN" mount -q --cache-dir "$W/cache-before" "$img" "$W/mnt/before-$set"; mnts+=("$W/mnt/before-$set")
    root[before]=$W/mnt/before-$set
  fi
  sync
}

release() {
  local set=$1 m
  for m in "$W/mnt/imgfs-$set" "$W/mnt/before-$set" "$W/mnt/ovl-$set" "$W/tmpfs/$set"; do
    mountpoint -q "$m" && { umount "$m"; waitgone "$m"; }
  done
  rm -rf "$W/ext4/$set"
}

# step NAME COMMAND: COMMAND (with $R for the tree's root) timed on every system, RUNS rounds; sets t[SYSTEM].
declare -A t
step() {
  local name=$1 cmd=$2 sys r t0 t1
  declare -A all=()
  for r in $(seq "$RUNS"); do
    for sys in "${systems[@]}"; do
      [[ -n ${root[$sys]:-} ]] || continue
      R=${root[$sys]} bash -c "$cmd" >/dev/null 2>"$W/warm.err" ||   # warm
        { echo "$name on $sys failed:" >&2; cat "$W/warm.err" >&2; exit 1; }
      t0=$(now); R=${root[$sys]} bash -c "$cmd" >/dev/null; t1=$(now)
      all[$sys]+="$(echo "$t1 - $t0" | bc -l) "
      echo "$name, round $r, $sys: $(echo "$t1 - $t0" | bc -l) s" >&2
    done
  done
  for sys in "${systems[@]}"; do
    t[$sys]=
    if [[ -n ${all[$sys]:-} ]]; then t[$sys]=$(tr ' ' '\n' <<<"${all[$sys]}" | grep . | median); fi
  done
}

rows=()
# row IMAGE WHAT BASELINE GOAL: a table row from t[], with the ratio imgfs / BASELINE
row() {
  local cells="| $1 | $2 |" sys
  for sys in "${systems[@]}"; do
    if [[ -n ${t[$sys]} ]]; then cells+=" $(fmt "${t[$sys]}") s |"; else cells+=" – |"; fi
  done
  local r="–"
  [[ -n ${t[$3]} ]] && r="$(ratio "${t[imgfs]}" "${t[$3]}") × $3"
  [[ -n ${BASE_BIN:-} && -n ${t[before]} ]] && r+=" (before: $(ratio "${t[before]}" "${t[$3]}"))"
  rows+=("$cells $r | $4 |")
}

WALK='find "$R" -type f | wc -l'
READ='find "$R" -type f -print0 | xargs -0 cat >/dev/null'
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for set in $SETS; do
  prepare "$set" || { echo "skipping $set: no image" >&2; continue; }
  case $set in
    tree100k)
      step walk "$WALK"; row "100k files, 1–4 KiB" '`find MNT -type f \| wc -l`' overlayfs "≤ 0.15 s"
      step read "$READ"; row "100k files, 1–4 KiB" 'read every file (`find -type f -print0 \| xargs -0 cat`)' overlayfs "≤ 2.5 s" ;;
    flat200k)
      step ls 'ls -l "$R/flat"'; row "200,000 entries in one directory" '`ls -l` of the directory' ext4 "≤ 2 × ext4" ;;
    big1m)
      step walk "$WALK"; row "1M files, 0–1 KiB (big-1m)" '`find MNT -type f \| wc -l`' overlayfs "≤ 2 × overlayfs"
      step read "$READ"; row "1M files, 0–1 KiB (big-1m)" 'read every file (`find -type f -print0 \| xargs -0 cat`)' overlayfs "≤ 2 × overlayfs"
      step ls 'ls -l "$R/data/flat"'; row "1M files, 0–1 KiB (big-1m)" '`ls -l` of data/flat (100,000 entries)' ext4 "≤ 2 × ext4" ;;
  esac
  release "$set"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

header="| image | what |"; sep="|---|---|"
for sys in "${systems[@]}"; do
  case $sys in
    imgfs) header+=" imgfs |" ;; before) header+=" imgfs before |" ;; overlayfs) header+=" kernel overlayfs |" ;;
    ext4) header+=" $(findmnt -no FSTYPE -T "$W") tree |" ;; tmpfs) header+=" tmpfs |" ;;
  esac
  sep+="---|"
done
section=$(
  echo "## Walks, small files and ls -l"
  echo
  echo "Written by \`bench/run-walk.sh $RUNS\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB,"
  echo "$(uname -sr); load average $load0 at the start, $load1 at the end. Medians of $RUNS interleaved rounds;"
  echo "every command ran once untimed right before it was timed (warm caches). kernel overlayfs: read-only, its lower"
  echo "directory the same tree extracted by \`tar -x\` to the host disk, which is also the $(findmnt -no FSTYPE -T "$W") column."
  [[ -n ${BASE_BIN:-} ]] && echo "imgfs before: ${BASE_LABEL:-$BASE_BIN}, in the same run."
  echo
  echo "$header ratio | goal |"
  echo "$sep---|---|"
  printf '%s\n' "${rows[@]}"
)
# Replace this script's section (up to the next "## " heading), or append it.
if [[ -e $OUT ]] && grep -q '^## Walks, small files and ls -l$' "$OUT"; then
  awk -v s="$section" '
    /^## Walks, small files and ls -l$/ { print s; print ""; skip = 1; next }
    skip && /^## / { skip = 0 }
    !skip' "$OUT" >"$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
else
  { echo; echo "$section"; } >>"$OUT"
fi
echo "wrote $OUT" >&2
