#!/usr/bin/env bash
# scripts/fuzz.sh FUZZTIME [MINIMIZE] — run every fuzz target of the module (found with go test -list) for
# FUZZTIME each. A crasher is written by Go to the package's testdata/fuzz/<Target>/ and fails the run;
# commit it with the fix and it runs in every plain `go test` from then on.
#
# Go's engine sometimes ends a run at the -fuzztime boundary with "context deadline exceeded" and a
# non-zero exit without having found anything (golang/go#51484): that, with no new file written, is
# reported and not counted as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
time=${1:?usage: scripts/fuzz.sh FUZZTIME [MINIMIZE]}
minimize=${2:-100x}
n=0
failed=()
for p in $($GO list ./... | grep -v /integration); do
  for f in $($GO test -list 'Fuzz.*' "$p" | grep '^Fuzz'); do
    n=$((n + 1))
    dir=$($GO list -f '{{.Dir}}' "$p")/testdata/fuzz/$f
    before=$(ls "$dir" 2>/dev/null)
    echo "== $p $f ($time)"
    out=$($GO test -run='^$' -fuzz="^$f\$" -fuzztime="$time" -fuzzminimizetime="$minimize" "$p" 2>&1)
    rc=$?
    if [[ $rc == 0 ]]; then
      grep -E '^fuzz: elapsed' <<<"$out" | tail -1
      continue
    fi
    if [[ $(ls "$dir" 2>/dev/null) == "$before" ]] && grep -q 'context deadline exceeded' <<<"$out"; then
      grep -E '^fuzz: elapsed' <<<"$out" | tail -1
      echo "   (engine stopped at the time limit with 'context deadline exceeded', no crasher written: golang/go#51484)"
      continue
    fi
    echo "$out"
    failed+=("$p $f")
  done
done
if [[ $n == 0 ]]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi
if [[ ${#failed[@]} != 0 ]]; then
  printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: $n targets ran $time each"
