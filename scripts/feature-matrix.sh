#!/usr/bin/env bash
# The feature matrix: every workspace crate linted with no default features, with each of its
# features alone and with all of them (cargo-hack's --each-feature), first its library and
# binaries alone (the features a user's build resolves), then all its targets (tests, examples
# and benches compile with each feature set); then the tests of the combinations a user picks
# (the README's "Which features" table), and tokio with the platform's certificate verifier.
#
#   scripts/feature-matrix.sh           everything above
#   scripts/feature-matrix.sh --list    print the test combinations and exit
#
# Installs cargo-hack (pinned) with `cargo install` when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_HACK_VERSION=0.6.46

# The combinations a user picks, as `cargo test` arguments.
COMBINATIONS=(
  "-p diffusion-tokio"                                                   # tokio (default: rustls)
  "-p diffusion-async-std"                                               # async-std (default: async-std, rustls)
  "-p diffusion-async-std --no-default-features --features smol"         # smol, ws:// only
  "-p diffusion-async-std --no-default-features --features smol,rustls"  # smol with wss://
  "-p diffusion-tokio --features platform-verifier"                      # tokio, the system's roots
)

if [ "${1:-}" = --list ]; then
  printf 'cargo test --locked %s\n' "${COMBINATIONS[@]}"
  exit 0
elif [ $# -ne 0 ]; then
  echo "usage: scripts/feature-matrix.sh [--list]" >&2
  exit 2
fi

if ! cargo hack --version 2>/dev/null | grep -qF "$CARGO_HACK_VERSION"; then
  echo "feature-matrix: installing cargo-hack $CARGO_HACK_VERSION"
  cargo install --locked --quiet cargo-hack --version "$CARGO_HACK_VERSION"
fi

echo "feature-matrix: each crate's library and binaries, each feature set"
cargo hack clippy --workspace --each-feature --locked -- -D warnings
echo "feature-matrix: each crate's targets (tests, examples, benches), each feature set"
cargo hack clippy --workspace --each-feature --all-targets --locked -- -D warnings

for combination in "${COMBINATIONS[@]}"; do
  echo "feature-matrix: cargo test --locked $combination"
  # shellcheck disable=SC2086  # the combination is plain words
  cargo test --locked $combination
done
