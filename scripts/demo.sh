#!/usr/bin/env bash
# demo.sh BIN DIR — write the sample image archive, mount it, show the merged tree and a file, unmount.
set -euo pipefail
bin=$1; dir=$2
mkdir -p "$dir/mnt"
go run ./internal/sample/mksample "$dir/sample.tar"
echo "== the archive: a docker-save tarball with three layers (the top one gzip-compressed)"
tar -tvf "$dir/sample.tar"
echo
echo "== imgfs inspect $dir/sample.tar"
"$bin" inspect --cache-dir "$dir/cache" "$dir/sample.tar"
echo
echo "== imgfs mount $dir/sample.tar $dir/mnt"
"$bin" mount --cache-dir "$dir/cache" "$dir/sample.tar" "$dir/mnt"
trap '"$bin" unmount "$dir/mnt" 2>/dev/null || true' EXIT
echo "== the merged tree (whiteouts and the opaque directory applied; hardlinks share an inode)"
(cd "$dir/mnt" && find . -mindepth 1 \( -type l -printf '%P\t%M %n %U:%G %s -> %l\n' \) -o -printf '%P\t%M %n %U:%G %s\n' |
  LC_ALL=C sort | awk -F'\t' '{printf "  %-32s %s\n", $1, $2}')
echo
echo "== cat $dir/mnt/etc/os-release (layer 2 replaced layer 1's)"
cat "$dir/mnt/etc/os-release"
echo "== getfattr -d $dir/mnt/app/config.json"
getfattr -d "$dir/mnt/app/config.json" 2>/dev/null || echo "(getfattr not installed: apt-get install attr)"
echo "== stat -c '%i %h %n' of the three names of one hardlinked file"
stat -c '%i %h %n' "$dir/mnt/usr/bin/hello" "$dir/mnt/usr/bin/hello-again" "$dir/mnt/app/hello-hardlink"
echo
echo "== imgfs unmount $dir/mnt"
"$bin" unmount "$dir/mnt"

echo
echo "== imgfs mount --upper $dir/upper: writable; changes land in $dir/upper"
rm -rf "$dir/upper" "$dir/committed.tar"
"$bin" mount --cache-dir "$dir/cache" --upper "$dir/upper" "$dir/sample.tar" "$dir/mnt"
echo "built by imgfs" >"$dir/mnt/etc/motd"
echo "VERSION_ID=3" >>"$dir/mnt/etc/os-release"
rm "$dir/mnt/usr/bin/hello-again"
mv "$dir/mnt/app/v2" "$dir/mnt/app/v3"
echo "== imgfs diff"
"$bin" diff --cache-dir "$dir/cache" --upper "$dir/upper" "$dir/sample.tar"
echo "== imgfs commit (while mounted: writes are paused while the directory is read)"
"$bin" commit --cache-dir "$dir/cache" --upper "$dir/upper" -t imgfs/sample:committed -m "demo commit" \
  -c 'ENV DEMO=1' -o "$dir/committed.tar" "$dir/sample.tar"
"$bin" unmount "$dir/mnt"
echo "== imgfs inspect $dir/committed.tar (one more layer; the others byte for byte)"
"$bin" inspect --cache-dir "$dir/cache" "$dir/committed.tar" | sed -n '/^Layers/,$p'
echo "== imgfs export $dir/committed.tar | tar -t (a flat tar of the new image)"
"$bin" export -q --cache-dir "$dir/cache" "$dir/committed.tar" | tar -t | sed -n 1,8p
trap - EXIT
echo "done"
