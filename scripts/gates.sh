#!/usr/bin/env bash
# The project's gates, the same locally and in CI: formatting, lints, tests, conformance.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/policyhub-target}"

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo test"
cargo test --workspace
for check in scripts/checks.d/*.sh; do
  [ -e "$check" ] || continue
  echo "==> check: $check"
  bash "$check"
done
