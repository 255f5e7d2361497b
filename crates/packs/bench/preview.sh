#!/usr/bin/env bash
# Render + preview of every shipped pack against the shared bench's W1000 cluster and
# 100,000 Hubble flow lines, with parameters that fit that cluster. Prints, per pack, the
# policies rendered, render and render+preview times (best and median of 10), the observed
# edges and flows the pack would block, and coverage before -> after.
#
#   crates/packs/bench/preview.sh            (from the repository root; ../shared beside it)
set -euo pipefail
cd "$(dirname "$0")/../../.."
work=${WORK:-/tmp/policyhub-packs-bench}
mkdir -p "$work"
if [ ! -f "$work/w1000-flows.jsonl" ]; then
  python3 ../shared/bench/gen_cluster.py -W 1000 -P 500 --seed 1 --out "$work/w1000" >/dev/null
  python3 ../shared/bench/gen_flows.py --inventory "$work/w1000.inventory.json" \
    --lines 100000 --seed 7 --out "$work/w1000-flows.jsonl" >/dev/null
fi
cargo build --release -q -p policyhub-packs --example preview_bench
bin=${CARGO_TARGET_DIR:-target}/release/examples/preview_bench
ns=$(grep -A1 '^  name:' "$work/w1000/namespaces.yaml" | awk '/name:/ {print $2}' |
  grep -vx -e kube-system -e monitoring -e ingress-nginx | paste -sd, -)
run() { echo "== $1"; "$bin" "$work/w1000" "$work/w1000-flows.jsonl" "$@"; }
run microservices-baseline "namespaces=[$ns]"
run database-tier-isolation "namespaces=[$ns]" \
  'databases={postgres: {enabled: true, port: 5432, labels: {tier: db}, clients: {tier: backend}}, mysql: {enabled: true, port: 3306, labels: {tier: db}, clients: {tier: backend}}, redis: {enabled: true, port: 6379, labels: {tier: cache}, clients: {tier: backend}}}'
run api-gateway-patterns \
  'gateway={namespace: ingress-nginx, labels: {app.kubernetes.io/name: ingress-nginx}, ports: [80, 443]}'
run observability-stack 'prometheus={labels: {app: prometheus}, port: 9090}' "scrapedNamespaces=[$ns]"
run cis-kubernetes-network
run pci-dss-segmentation 'cdeNamespaces=[payments-ops, payments-internal, payments-edge-8, payments-jobs]'
run soc2-network-controls 'namespaces=[billing-mobile, billing-core, billing-public-2]'
run dora-ict-risk 'criticalNamespaces=[payments-ops, payments-internal, payments-edge-8, payments-jobs]' \
  'dependencies=[{name: checkout, namespace: checkout-web, labels: {tier: backend}, ports: [8080, 9000]}]'
