#!/usr/bin/env bash
# Conformance: the shared NetworkPolicy/ANP/BANP corpus, its connectivity diffs and
# ingress-controller reports, and the project's Cilium cases. Prints failing cases and the
# closing "N passed, M failed" line; fails on any failure or entry not evaluated.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p policyhub-cli -- conformance netpol \
  ../shared/corpus/netpol/cases ../shared/corpus/netpol/cases-diff \
  ../shared/corpus/netpol/cases-ingress crates/netpol/tests/cilium | awk '!/^ok /'
# Exposure: 4 lines whose connections name a port (towards a hypothetical peer) are not
# evaluated; they are listed and counted, never passed.
cargo run --quiet --release -p policyhub-cli -- conformance netpol --allow-unsupported \
  ../shared/corpus/netpol/cases-exposure | awk '!/^ok /'
