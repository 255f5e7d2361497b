#!/usr/bin/env bash
# Conformance: the shared NetworkPolicy/ANP/BANP corpus, its connectivity diffs,
# ingress-controller reports and exposure analyses, and the project's Cilium cases.
# Prints failing cases and the closing "N passed, M failed" line; fails on any failure or
# entry not evaluated.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p policyhub-cli -- conformance netpol \
  ../shared/corpus/netpol/cases ../shared/corpus/netpol/cases-diff \
  ../shared/corpus/netpol/cases-ingress ../shared/corpus/netpol/cases-exposure \
  crates/netpol/tests/cilium | awk '!/^ok /'
