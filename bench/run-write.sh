#!/usr/bin/env bash
# bench/run-write.sh — writable mounts, commit, export and import against their baselines, medians of
# several runs, appended to BENCHMARKS.md. Needs root, FUSE, pigz, and the corpus (make corpus) with
# corpusgen built by it (and the big step for the export rows).
# Usage: bench/run-write.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
CORPUS=${IMGFS_CORPUS:-/var/lib/imgfs-corpus}
BIN=$PWD/bin/imgfs
CG=$CORPUS/bin/corpusgen
W=$(mktemp -d /var/tmp/imgfs-wbench.XXXXXX)
MNT=$W/mnt; mkdir -p "$MNT"
OUT=${BENCH_OUT:-BENCHMARKS.md}
trap 'umount "$MNT" 2>/dev/null || true; rm -rf "$W"' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timeit() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
fmt() { printf '%.3f' "$1"; }
mbs() { echo "$1 / $2 / 1048576" | bc; }
unmount_img() { "$BIN" unmount "$MNT"; while mountpoint -q "$MNT"; do sleep 0.05; done; }
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); echo "$1: imgfs $2, baseline $3, ratio $4 ($5)" >&2; }

# A one-layer image holding one 1 GiB file of hex digits.
G=$((1024*1024*1024))
"$CG" tarbig -size $G -path big/blob-1GiB.bin -content hex -seed 7 >"$W/layer.tar"
"$CG" dockerarchive -style flat -tag bench/1g:latest -layer "$W/layer.tar" -out "$W/img.tar" >/dev/null
rm "$W/layer.tar"
"$BIN" inspect -q --cache-dir "$W/cache" "$W/img.tar" >/dev/null
cat "$W/img.tar" >/dev/null

# copy-up of the 1 GiB lower file (the first write into it) vs cp of a 1 GiB file on the same disk
"$BIN" export -q --cache-dir "$W/cache" -o "$W/flat.tar" "$W/img.tar"
tar -xf "$W/flat.tar" -C "$W" big/blob-1GiB.bin
cp1g() { cp "$W/big/blob-1GiB.bin" "$W/copy.bin"; sync -f "$W/copy.bin"; rm "$W/copy.bin"; }
# sync first (untimed): on ext4 (data=ordered) an fsync commits the journal and so also writes out
# whatever earlier steps left dirty, which would land in whichever run comes first.
base=$(for _ in $(seq "$RUNS"); do sync; timeit cp1g; done | median)
copyup() { printf x | dd of="$MNT/big/blob-1GiB.bin" bs=1 seek=512 conv=notrunc,fsync status=none; }
t=$(for i in $(seq "$RUNS"); do rm -rf "$W/up$i"; "$BIN" mount -q --cache-dir "$W/cache" --upper "$W/up$i" "$W/img.tar" "$MNT"; sync; timeit copyup; unmount_img; done | median)
row "copy-up of a 1 GiB lower file (first 1-byte write, fsync)" "$(fmt "$t") s" "$(fmt "$base") s \`cp\` + sync of 1 GiB on the same disk" "$(ratio "$t" "$base")" "-"

# write throughput: 1 GiB of new data through the mount vs to the host disk
wr() { dd if=/dev/zero of="$1" bs=1M count=1024 conv=fsync status=none; rm -f "$1"; }
base=$(for _ in $(seq "$RUNS"); do sync; timeit wr "$W/host.bin"; done | median)
"$BIN" mount -q --cache-dir "$W/cache" --upper "$W/upw" "$W/img.tar" "$MNT"
t=$(for _ in $(seq "$RUNS"); do sync; timeit wr "$MNT/new.bin"; done | median)
unmount_img
row "write 1 GiB (dd bs=1M, fsync) into the writable mount" "$(fmt "$t") s ($(mbs $G "$t") MiB/s)" "$(fmt "$base") s ($(mbs $G "$base") MiB/s) same dd to the host disk" "$(ratio "$base" "$t") (speed)" "-"

# commit of a 1 GiB upper dir with gzip vs tar -c | pigz of the same dir
U=$W/up1
base=$(for _ in $(seq "$RUNS"); do timeit bash -c "tar -C $U -c . | pigz -c > $W/pigz.out"; done | median)
t=$(for i in $(seq "$RUNS"); do rm -f "$W/c.tar"; timeit "$BIN" commit -q --cache-dir "$W/cache" --upper "$U" --compression gzip -o "$W/c.tar" "$W/img.tar"; done | median)
row "commit of a 1 GiB upper dir, gzip (includes copying the 1 GiB base layer and fsync)" "$(fmt "$t") s" "$(fmt "$base") s \`tar -c \| pigz\` of the upper dir" "$(ratio "$t" "$base")" "-"

# export vs cat of the archive, to a pipe
base=$(for _ in $(seq "$RUNS"); do timeit bash -c "cat $W/img.tar | cat > /dev/null"; done | median)
t=$(for _ in $(seq "$RUNS"); do timeit bash -c "$BIN export -q --cache-dir $W/cache $W/img.tar | cat > /dev/null"; done | median)
row "export of the 1 GiB image to a pipe" "$(fmt "$t") s" "$(fmt "$base") s \`cat\` of the archive to a pipe" "$(ratio "$base" "$t") (speed)" "target ≥ 0.8"
if [[ -e $CORPUS/artifacts/big-1m/docker-archive-uncompressed.tar ]]; then
  A1=$CORPUS/artifacts/big-1m/docker-archive-uncompressed.tar
  "$BIN" inspect -q --cache-dir "$W/cache" "$A1" >/dev/null; cat "$A1" >/dev/null
  base=$(for _ in $(seq "$RUNS"); do timeit bash -c "cat $A1 | cat > /dev/null"; done | median)
  t=$(for _ in $(seq "$RUNS"); do timeit bash -c "$BIN export -q --cache-dir $W/cache $A1 | cat > /dev/null"; done | median)
  row "export of the 1,009,092-entry image to a pipe" "$(fmt "$t") s" "$(fmt "$base") s \`cat\` of the archive to a pipe" "$(ratio "$base" "$t") (speed)" "target ≥ 0.8"
fi

# import of the 1 GiB flat tar with gzip vs pigz of it
base=$(for _ in $(seq "$RUNS"); do timeit bash -c "pigz -c $W/flat.tar > $W/pigz.out"; done | median)
t=$(for _ in $(seq "$RUNS"); do rm -f "$W/imp.tar"; timeit "$BIN" import -q --compression gzip -o "$W/imp.tar" "$W/flat.tar"; done | median)
row "import of a 1 GiB flat tar, gzip (hash + compress + fsync)" "$(fmt "$t") s" "$(fmt "$base") s \`pigz -c\` of it" "$(ratio "$t" "$base")" "-"

{
  echo
  echo "## Writable mounts, commit, export, import"
  echo
  echo "Written by \`bench/run-write.sh\` on $(date -u +%Y-%m-%d), same machine; medians of $RUNS runs; baselines in the same run."
  echo "The test image is one layer holding one 1 GiB file of hex digits (about 4 bits of entropy per byte)."
  echo
  echo "| what | imgfs | baseline | ratio | note |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >>"$OUT"
echo "appended to $OUT" >&2
