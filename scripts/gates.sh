#!/usr/bin/env bash
# The project's gates, the same locally and in CI: formatting, lints, tests, conformance.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/policyhub-target}"
# CI builds a fresh clone each time: incremental caches would only pile up on disk.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

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
