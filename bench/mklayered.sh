#!/usr/bin/env bash
# bench/mklayered.sh — an OCI layout (uncompressed layers) from layer tars, bottom first.
# Usage: bench/mklayered.sh OUT_DIR LAYER.tar...
set -euo pipefail
OUT=$1; shift
mkdir -p "$OUT/blobs/sha256"
put() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); ln -f "$1" "$OUT/blobs/sha256/$d" 2>/dev/null || cp "$1" "$OUT/blobs/sha256/$d"; echo "sha256:$d"; }
layers=() ; diffs=()
for t in "$@"; do
  d=$(put "$t")
  layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"$d\",\"size\":$(stat -c %s "$t")}")
  diffs+=("\"$d\"")
done
T=$(mktemp); U=$(mktemp)
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$(IFS=,; echo "${diffs[*]}")" >"$T"
cd_=$(put "$T"); cs=$(stat -c %s "$T")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
  "$cd_" "$cs" "$(IFS=,; echo "${layers[*]}")" >"$U"
md=$(put "$U"); ms=$(stat -c %s "$U"); rm -f "$T" "$U"
echo '{"imageLayoutVersion":"1.0.0"}' >"$OUT/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s}]}' "$md" "$ms" >"$OUT/index.json"
