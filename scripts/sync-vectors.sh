#!/usr/bin/env bash
# Keeps the repository's copy of the protocol vectors (diffusion-proto/testdata/vectors) equal
# to the analysts' copy (../shared/protocol/vectors), when that folder exists beside the clone.
#
#   scripts/sync-vectors.sh           check: report differences, exit 1 if there are any
#   scripts/sync-vectors.sh --update  refresh the repository's copy from ../shared
#
# A clone without ../shared has nothing to compare against: the check says so and exits 0.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ours="$repo/diffusion-proto/testdata/vectors"
theirs=${DIFFUSION_VECTORS_SOURCE:-$repo/../shared/protocol/vectors}

if [ ! -d "$theirs" ]; then
  echo "sync-vectors: no $theirs here; the repository's copy is used as it is"
  exit 0
fi
case "${1:-}" in
  --update)
    mkdir -p "$ours"
    rm -f "$ours"/*.json
    cp "$theirs"/*.json "$ours"/
    chmod 644 "$ours"/*.json
    echo "sync-vectors: copied $(ls "$theirs"/*.json | wc -l) files from $theirs"
    ;;
  "")
    if diff -r -q "$theirs" "$ours"; then
      echo "sync-vectors: $ours equals $theirs"
    else
      echo "sync-vectors: the copies differ; run scripts/sync-vectors.sh --update and commit" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: scripts/sync-vectors.sh [--update]" >&2
    exit 2
    ;;
esac
