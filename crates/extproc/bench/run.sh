#!/usr/bin/env bash
# Load test of kernel + agent with the ext_proc load client (examples/extproc_load.rs).
#   crates/extproc/bench/run.sh [duration_s] [concurrency] [extra load-client flags...]
# KERNEL_CPUS / LOAD_CPUS choose the taskset CPU lists (default: kernel+agent on 0-1, load on
# the rest when there are more than 2 CPUs, otherwise shared). OTLP=1 turns tracing on in both
# processes (SAMPLING, default 1.0, for new traces) and exports to a span-counting collector
# (`extproc_load otlp-sink`). RSS_EVERY=N samples RSS during the load (soak runs).
set -euo pipefail
cd "$(dirname "$0")/../../.."
duration="${1:-15}"; concurrency="${2:-64}"; shift $(( $# > 2 ? 2 : $# )) || true
. crates/extproc/bench/bins.sh
cpus="$(nproc)"
KERNEL_CPUS="${KERNEL_CPUS:-0-1}"
if [ "$cpus" -gt 2 ]; then LOAD_CPUS="${LOAD_CPUS:-2-$((cpus - 1))}"; else LOAD_CPUS="${LOAD_CPUS:-0-$((cpus - 1))}"; fi
mkdir -p /tmp/policyhub-bench
export BENCH_API_KEYS="alice:alice-key"
export BENCH_HS256_SECRET="bench-secret-bench-secret-bench-secret-0123"
kernel_config=crates/extproc/bench/kernel-bench.yaml
agent_config=crates/extproc/bench/agent-bench.yaml
if [ "${OTLP:-0}" = 1 ]; then
  for name in kernel agent; do
    sed "s/log_level: warn}/log_level: warn, tracing: {sampling_rate: ${SAMPLING:-1.0}}}/" \
      "crates/extproc/bench/$name-bench.yaml" > "/tmp/policyhub-bench/$name.yaml"
  done
  kernel_config=/tmp/policyhub-bench/kernel.yaml
  agent_config=/tmp/policyhub-bench/agent.yaml
  taskset -c "$LOAD_CPUS" "$bin/examples/extproc_load" otlp-sink 127.0.0.1:19317 >/tmp/policyhub-bench/sink.out &
  sink=$!
  export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:19317"
fi
taskset -c "$KERNEL_CPUS" "$bin/policy-agent" --config="$agent_config" 2>/tmp/policyhub-bench/agent.log &
agent=$!
sleep 0.5
taskset -c "$KERNEL_CPUS" "$bin/policy-kernel" --config="$kernel_config" 2>/tmp/policyhub-bench/kernel.log &
kernel=$!
trap 'kill $kernel $agent ${sink:-} 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:19090/health/ready >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time (user+system, clock ticks) of a process: the cost per request does not depend on
# what else runs on the machine, unlike requests/s on shared cores.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
echo "rss_kb_before kernel=$(rss $kernel) agent=$(rss $agent)"
k0=$(ticks $kernel); a0=$(ticks $agent)
# RSS_EVERY=N prints both processes' RSS every N seconds of the load (soak runs).
if [ -n "${RSS_EVERY:-}" ]; then
  (t=0; while sleep "$RSS_EVERY"; do t=$((t + RSS_EVERY)); echo "rss_kb t=${t}s kernel=$(rss $kernel) agent=$(rss $agent)" >&2; done) &
  sampler=$!
fi
out="$(taskset -c "$LOAD_CPUS" "$bin/examples/extproc_load" --target 127.0.0.1:19001 --route users \
  --duration "$duration" --concurrency "$concurrency" --header x-api-key=alice-key \
  --hs256-secret "$BENCH_HS256_SECRET" "$@")"
k1=$(ticks $kernel); a1=$(ticks $agent)
[ -n "${sampler:-}" ] && kill "$sampler"
echo "$out"
requests="$(echo "$out" | sed -n 's/^requests=\([0-9]*\).*/\1/p')"
awk -v k=$((k1 - k0)) -v a=$((a1 - a0)) -v hz="$hz" -v n="$requests" 'BEGIN {
  per = (k + a) / hz / n * 1e6
  printf "cpu_us_per_request kernel=%.1f agent=%.1f total=%.1f => capacity_on_2_cores=%.0f req/s\n", k / hz / n * 1e6, a / hz / n * 1e6, per, 2e6 / per
}'
echo "rss_kb_after kernel=$(rss $kernel) agent=$(rss $agent)"
if [ "${OTLP:-0}" = 1 ]; then
  kill -TERM $kernel $agent; wait $kernel $agent || true
  kill -INT $sink; wait $sink || true
  cat /tmp/policyhub-bench/sink.out
fi
