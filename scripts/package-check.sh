#!/usr/bin/env bash
# The published crates as crates.io would get them: `cargo package --workspace` packs each one
# and builds it from its package alone (against the other packages, not the workspace), then
# the packages' own tests, examples, benches and doc tests are built and run, from the .crate
# files unpacked into an empty folder (so the vectors in diffusion-proto's package, not the
# repository's, are what its tests read).
#
#   scripts/package-check.sh [--allow-dirty]    (--allow-dirty: package uncommitted changes)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

PUBLISHED=(diffusion-proto diffusion-client diffusion-tokio diffusion-async-std diffusion-test-server)

allow_dirty=()
case "${1:-}" in
  --allow-dirty) allow_dirty=(--allow-dirty) ;;
  "") ;;
  *) echo "usage: scripts/package-check.sh [--allow-dirty]" >&2; exit 2 ;;
esac

packages=()
for name in "${PUBLISHED[@]}"; do packages+=(-p "$name"); done
cargo package --locked "${allow_dirty[@]}" "${packages[@]}"

version=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "diffusion-proto"))')
work=$(mktemp -d "${TMPDIR:-/tmp}/package-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A workspace of the unpacked packages; each one's dependencies on the others (versions, as on
# crates.io) resolve to the unpacked copies through [patch.crates-io].
{
  echo '[workspace]'
  echo 'resolver = "2"'
  printf 'members = ['; printf '"%s", ' "${PUBLISHED[@]}"; echo ']'
  echo '[patch.crates-io]'
  for name in "${PUBLISHED[@]}"; do echo "$name = { path = \"$name\" }"; done
} >"$work/Cargo.toml"
for name in "${PUBLISHED[@]}"; do
  tar -xzf "target/package/$name-$version.crate" -C "$work"
  mv "$work/$name-$version" "$work/$name"
done
# The repository's lock file, so that the packages build with the versions CI tested.
cp Cargo.lock "$work/Cargo.lock"

echo "package-check: the packages' tests, examples and benches, from $work"
# The repository's target folder: the dependencies are already built there.
CARGO_TARGET_DIR="$repo/target" cargo test --manifest-path "$work/Cargo.toml" --workspace \
  --all-features --all-targets
echo "package-check: the packages' doc tests (their examples run against the test server)"
CARGO_TARGET_DIR="$repo/target" cargo test --manifest-path "$work/Cargo.toml" --workspace \
  --all-features --doc
