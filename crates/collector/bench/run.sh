#!/usr/bin/env bash
# Collector benchmark: new TCP connections per second between two network namespaces
# standing for two pods of a snapshot, captured by `policyhub-collector --source ebpf`
# (release build), judged and aggregated. Reports, per rate: connections established,
# records observed (client and server side of each), flows judged, events lost, and the
# collector process's CPU share over the load (utime+stime from /proc).
#
#   sudo bash crates/collector/bench/run.sh [RATE...]     (default: 10000 20000 25000)
#
# Needs root, iproute2, kernel BTF; the hub URL is unreachable on purpose (batches spool).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/policyhub-target}"
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(10000 20000 25000)
duration=10

cargo build --release -q -p policyhub-collector --bin policyhub-collector
cargo build --release -q -p policyhub-ebpf --example tcp_load
bin="$CARGO_TARGET_DIR/release"

work=$(mktemp -d)
cli=pcb$$c; srv=pcb$$s
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$cli"; ip netns add "$srv"
ip link add "v$$c" netns "$cli" type veth peer name "v$$s" netns "$srv"
ip -n "$cli" addr add 10.232.0.1/24 dev "v$$c"; ip -n "$cli" link set "v$$c" up; ip -n "$cli" link set lo up
ip -n "$srv" addr add 10.232.0.2/24 dev "v$$s"; ip -n "$srv" link set "v$$s" up; ip -n "$srv" link set lo up
# Enough ephemeral ports and quick reuse for tens of thousands of connections a second.
ip netns exec "$cli" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1

cat > "$work/snapshot.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: v1
kind: Pod
metadata: {name: client-1, namespace: bench, labels: {app: client}}
spec: {nodeName: bench-node, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.232.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server-1, namespace: bench, labels: {app: server}}
spec: {nodeName: bench-node, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.232.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server, namespace: bench}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 7800}]}]
YAML
echo token > "$work/token"
metrics=127.0.0.1:19464
"$bin/policyhub-collector" --source ebpf --snapshot "$work/snapshot.yaml" --node-name bench-node \
  --hub-url http://127.0.0.1:9 --token-file "$work/token" --spool-dir "$work/spool" \
  --flush-interval 5s --metrics-listen "$metrics" --log-format text >"$work/collector.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fs "http://$metrics/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://$metrics/readyz" >/dev/null || { cat "$work/collector.log"; exit 1; }

metric() { curl -fs "http://$metrics/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

printf '%-8s %12s %12s %10s %10s %6s %10s\n' rate established conn/s observed judged lost cpu
for rate in "${rates[@]}"; do
  o0=$(metric policyhub_collector_flows_observed_total)
  j0=$(curl -fs "http://$metrics/metrics" | awk '/flows_judged_total/ && !/^#/ {s += $2} END {print s}')
  t0=$(ticks)
  out=$("$bin/examples/tcp_load" --serve --serve-netns "/run/netns/$srv" --netns "/run/netns/$cli" \
    --target 10.232.0.2:7800 --rate "$rate" --duration "$duration" --concurrency 8)
  sleep 1   # the last records drain
  t1=$(ticks)
  o1=$(metric policyhub_collector_flows_observed_total)
  j1=$(curl -fs "http://$metrics/metrics" | awk '/flows_judged_total/ && !/^#/ {s += $2} END {print s}')
  lost=$(metric policyhub_collector_lost_events_total)
  est=$(echo "$out" | grep -o ' established=[0-9]*' | cut -d= -f2)
  per=$(echo "$out" | grep -o 'established/s=[0-9]*' | cut -d= -f2)
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v d="$duration" 'BEGIN {printf "%.1f%%", 100 * (b - a) / hz / (d + 1)}')
  printf '%-8s %12s %12s %10s %10s %6s %10s\n' "$rate" "${est:-?}" "${per:-?}" $((o1 - o0)) $((j1 - j0)) "$lost" "$cpu"
done
echo "(cpu: the collector process's share of one core over the load and one second of drain)"
