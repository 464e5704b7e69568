#!/usr/bin/env bash
# bench/layers.sh — cold mount of a multi-layer OCI layout against each of its layers alone (a one-layer
# image made beside it: the same blob, a manifest and a config naming only that layer), interleaved,
# medians of RUNS; the ratio is the whole image's median over the slowest layer's.
# Usage: bench/layers.sh RUNS OCI_LAYOUT [BIN]   (root, FUSE)
set -euo pipefail
RUNS=$1; SRC=$2; BIN=${3:-$PWD/bin/imgfs}
W=$(mktemp -d /var/tmp/imgfs-layers.XXXXXX)
trap 'umount "$W/mnt" 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/mnt"
blob() { echo "$1/blobs/sha256/${2#sha256:}"; }
man=$(jq -r '.manifests[0].digest' "$SRC/index.json")
M=$(blob "$SRC" "$man")
n=$(jq '.layers | length' "$M")
C=$(blob "$SRC" "$(jq -r '.config.digest' "$M")")
# one I: an OCI layout at $W/one$I holding layer I alone
one() {
  local i=$1 d=$W/one$1 L cd_ md ms
  mkdir -p "$d/blobs/sha256"
  L=$(blob "$SRC" "$(jq -r ".layers[$i].digest" "$M")")
  ln "$L" "$d/blobs/sha256/" 2>/dev/null || cp "$L" "$d/blobs/sha256/"   # imgfs refuses symlinked blobs
  jq -c --argjson i "$i" '.rootfs.diff_ids = [.rootfs.diff_ids[$i]] | del(.history)' "$C" >"$W/cfg"
  cd_=sha256:$(sha256sum "$W/cfg" | cut -d' ' -f1); mv "$W/cfg" "$(blob "$d" "$cd_")"
  jq -c --argjson i "$i" --arg cd "$cd_" --argjson cs "$(stat -c %s "$(blob "$d" "$cd_")")" \
    '.layers = [.layers[$i]] | .config.digest = $cd | .config.size = $cs' "$M" >"$W/man"
  md=sha256:$(sha256sum "$W/man" | cut -d' ' -f1); ms=$(stat -c %s "$W/man"); mv "$W/man" "$(blob "$d" "$md")"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
  jq -nc --arg md "$md" --argjson ms "$ms" \
    '{schemaVersion:2, manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json", digest:$md, size:$ms}]}' >"$d/index.json"
}
cold() { # ARCHIVE: seconds of a cold mount (empty cache) until it is ready, then unmount
  rm -rf "$W/cache"; local t0 t1; t0=$(date +%s.%N)
  "$BIN" mount --quiet --cache-dir "$W/cache" "$1" "$W/mnt" || return 1; t1=$(date +%s.%N)
  "$BIN" unmount "$W/mnt"; while mountpoint -q "$W/mnt"; do sleep 0.05; done
  echo "$t1 - $t0" | bc -l
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for i in $(seq 0 $((n-1))); do one "$i"; done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $n layers; $(nproc) cores"
declare -A runs=()
for _ in $(seq "$RUNS"); do
  t=$(cold "$SRC"); runs[all]+="$t "
  for i in $(seq 0 $((n-1))); do t=$(cold "$W/one$i"); runs[$i]+="$t "; done
done
slow=0; slowi=-1
for i in $(seq 0 $((n-1))); do
  m=$(echo "${runs[$i]}" | median); printf 'layer %d alone: %.2f s (runs %s)\n' $((i+1)) "$m" "${runs[$i]}"
  if (( $(echo "$m > $slow" | bc -l) )); then slow=$m; slowi=$i; fi
done
a=$(echo "${runs[all]}" | median)
printf 'all %d layers: %.2f s (runs %s)\nratio to the slowest layer (%d): %.2f\n' "$n" "$a" "${runs[all]}" $((slowi+1)) "$(echo "$a / $slow" | bc -l)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
