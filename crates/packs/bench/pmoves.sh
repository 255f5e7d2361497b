#!/usr/bin/env bash
# Preview every pack against the PMOVES deployment: a snapshot built from the service matrix
# (pmoves_cluster.py), the tier policies `policyhub segment generate` writes for it, and
# flows synthesised for that snapshot. Prints one summary line per pack.
#
#   crates/packs/bench/pmoves.sh     (from the repository root; `policyhub` on PATH or POLICYHUB=...)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ph=${POLICYHUB:-policyhub}
work=${WORK:-/tmp/policyhub-packs-pmoves}
rm -rf "$work" && mkdir -p "$work"
matrix=../shared/corpus/pmoves/services.yaml
python3 crates/packs/bench/pmoves_cluster.py "$matrix" > "$work/cluster.yaml"
"$ph" segment generate "$matrix" --mode service --out "$work/segment" > /dev/null
"$ph" flows synth --snapshot "$work/cluster.yaml" "$work/segment/network-policies" \
  --count 50000 --seed 5 --out "$work/flows.jsonl" > /dev/null
preview() {
  "$ph" pack preview "$@" --snapshot "$work/cluster.yaml" "$work/segment/network-policies" \
    --flows "$work/flows.jsonl" -o json |
    python3 crates/packs/bench/preview_summary.py
}
preview microservices-baseline -p 'applications=[]'
preview database-tier-isolation -p 'databases={postgres: {enabled: true, port: 5432, labels: {app: postgres}, clients: {app: postgrest}}, mysql: {enabled: false, port: 3306, labels: {app: mysql}, clients: {app: none}}, redis: {enabled: false, port: 6379, labels: {app: redis}, clients: {app: none}}}'
preview api-gateway-patterns -p 'gateway={namespace: default, labels: {tier: api}, ports: [8080, 8081, 8091, 8051, 8052, 8077, 8099, 3000]}'
preview observability-stack -p 'namespace=default' -p 'prometheus={labels: {app: prometheus}, port: 9090}' \
  -p 'grafana={labels: {app: grafana}, port: 3000}' -p 'loki={labels: {app: loki}, port: 3100}' \
  -p 'logShippers={app: promtail}'
preview cis-kubernetes-network
preview pci-dss-segmentation -p 'cdeNamespaces=[default]'
preview soc2-network-controls
preview dora-ict-risk -p 'criticalNamespaces=[default]'
