#!/usr/bin/env bash
# bench/layers.sh — cold mount of a multi-layer OCI layout against its slowest (largest) layer alone,
# interleaved, medians of RUNS. The one-layer image is made beside it: the same blob, a manifest and a
# config that name only that layer. Usage: bench/layers.sh RUNS OCI_LAYOUT [BIN]   (root, FUSE)
set -euo pipefail
RUNS=$1; SRC=$2; BIN=${3:-$PWD/bin/imgfs}
W=$(mktemp -d /var/tmp/imgfs-layers.XXXXXX)
trap 'umount "$W/mnt" 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/mnt" "$W/one/blobs/sha256"
blob() { echo "$1/blobs/sha256/${2#sha256:}"; }
man=$(jq -r '.manifests[0].digest' "$SRC/index.json")
M=$(blob "$SRC" "$man")
i=$(jq '[.layers[].size] | to_entries | max_by(.value) | .key' "$M")
n=$(jq '.layers | length' "$M")
cfgd=$(jq -r '.config.digest' "$M")
ln -s "$(blob "$SRC" "$(jq -r ".layers[$i].digest" "$M")")" "$W/one/blobs/sha256/"
jq -c --argjson i "$i" '.rootfs.diff_ids = [.rootfs.diff_ids[$i]] | del(.history)' "$(blob "$SRC" "$cfgd")" >"$W/cfg"
cd_=sha256:$(sha256sum "$W/cfg" | cut -d' ' -f1); mv "$W/cfg" "$(blob "$W/one" "$cd_")"
jq -c --argjson i "$i" --arg cd "$cd_" --argjson cs "$(stat -c %s "$(blob "$W/one" "$cd_")")" \
  '.layers = [.layers[$i]] | .config.digest = $cd | .config.size = $cs' "$M" >"$W/man"
md=sha256:$(sha256sum "$W/man" | cut -d' ' -f1); ms=$(stat -c %s "$W/man"); mv "$W/man" "$(blob "$W/one" "$md")"
echo '{"imageLayoutVersion":"1.0.0"}' >"$W/one/oci-layout"
jq -c --arg md "$md" --argjson ms "$ms" '{schemaVersion:2, manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json", digest:$md, size:$ms}]}' \
  -n >"$W/one/index.json"
cold() { # ARCHIVE: seconds of a cold mount (empty cache) until it is ready, then unmount
  rm -rf "$W/cache"; local t0 t1; t0=$(date +%s.%N)
  "$BIN" mount --quiet --cache-dir "$W/cache" "$1" "$W/mnt"; t1=$(date +%s.%N)
  "$BIN" unmount "$W/mnt"; while mountpoint -q "$W/mnt"; do sleep 0.05; done
  echo "$t1 - $t0" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $n layers, largest is layer $((i+1))"
all=(); one=()
for _ in $(seq "$RUNS"); do all+=("$(cold "$SRC")"); one+=("$(cold "$W/one")"); done
a=$(printf '%s\n' "${all[@]}" | median); o=$(printf '%s\n' "${one[@]}" | median)
printf 'all %d layers: %.2f s (runs %s)\nlargest layer alone: %.2f s (runs %s)\nratio %.2f\n' "$n" "$a" "${all[*]}" "$o" "${one[*]}" "$(echo "$a / $o" | bc -l)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
