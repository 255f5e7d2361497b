#!/usr/bin/env bash
# Kyverno conformance: the shared corpus of Kyverno CLI tests (../shared/corpus/kyverno).
# Prints each mismatch with its reason, the agreement and the closing "N passed, M failed"
# line; fails when fewer than 97% of the expected results hold.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p policyhub-cli -- conformance kyverno \
  ../shared/corpus/kyverno/cases --min-agreement 97 | awk '!/^ok /'
