#!/usr/bin/env bash
# Conformance: the shared NetworkPolicy/ANP/BANP corpus and the project's Cilium cases.
# Prints failing cases and the closing "N passed, M failed" line; fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p policyhub-cli -- conformance netpol \
  ../shared/corpus/netpol/cases crates/netpol/tests/cilium | awk '!/^ok /'
