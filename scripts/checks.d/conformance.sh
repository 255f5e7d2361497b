#!/usr/bin/env bash
# Conformance: the shared NetworkPolicy/ANP/BANP corpus, its connectivity diffs and the
# project's Cilium cases. Prints failing cases and the closing "N passed, M failed" line;
# fails on any failure. The diffs' entries naming upstream's {ingress-controller} are not
# evaluated (no Service/Ingress/Route model yet): listed and counted, never passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p policyhub-cli -- conformance netpol \
  ../shared/corpus/netpol/cases crates/netpol/tests/cilium | awk '!/^ok /'
cargo run --quiet --release -p policyhub-cli -- conformance netpol --allow-unsupported \
  ../shared/corpus/netpol/cases-diff | awk '!/^ok /'
