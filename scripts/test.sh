#!/usr/bin/env bash
# Installs every system dependency the tests need (idempotent), then runs the gates:
# cargo fmt --check, cargo clippy --all-targets -D warnings, and every test.
# Each file in scripts/setup.d/ installs and starts what one part of the project needs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/policyhub-target}"

for setup in scripts/setup.d/*.sh; do
  [ -e "$setup" ] || continue
  echo "==> setup: $setup"
  bash "$setup"
done

exec bash scripts/gates.sh
