#!/usr/bin/env bash
# HTTP load through a real Envoy 1.36.2: Envoy alone (baseline) and Envoy + ext_proc
# (policy-kernel + policy-agent, chain apiKeyAuth -> jwtValidation -> rateLimit), same run.
#   crates/extproc/bench/envoy-bench.sh [duration_s] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/../../.."
duration="${1:-10}"; concurrency="${2:-32}"
. crates/extproc/bench/bins.sh
envoy="${ENVOY_BIN:-$(python3 -c 'import envoy._bin as b, os; print(os.path.join(os.path.dirname(b.__file__), "envoy"))')}"
cpus="$(nproc)"
KERNEL_CPUS="${KERNEL_CPUS:-0-1}"
if [ "$cpus" -gt 2 ]; then OTHER_CPUS="${OTHER_CPUS:-2-$((cpus - 1))}"; else OTHER_CPUS="${OTHER_CPUS:-0-$((cpus - 1))}"; fi
work=/tmp/policyhub-bench; mkdir -p "$work"
export BENCH_API_KEYS="alice:alice-key"
export BENCH_HS256_SECRET="bench-secret-bench-secret-bench-secret-0123"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
taskset -c "$OTHER_CPUS" "$bin/examples/extproc_load" upstream 127.0.0.1:18080 & pids+=($!)
taskset -c "$KERNEL_CPUS" "$bin/policy-agent" --config=crates/extproc/bench/agent-bench.yaml 2>"$work/agent.log" & pids+=($!)
sleep 0.5
taskset -c "$KERNEL_CPUS" "$bin/policy-kernel" --config=crates/extproc/bench/kernel-bench.yaml 2>"$work/kernel.log" & pids+=($!)
# Envoy with ext_proc -> kernel on 19001; Envoy alone: the same file without the ext_proc filter.
sed -e 's/port_value: 10000/port_value: 18000/; s/port_value: 9901/port_value: 18901/; s/port_value: 9001/port_value: 19001/; s/port_value: 8080/port_value: 18080/' \
    -e 's/address: policy-engine,/address: 127.0.0.1,/; s/address: app,/address: 127.0.0.1,/' \
    deploy/policy-engine/envoy.yaml > "$work/envoy-extproc.yaml"
python3 - "$work/envoy-extproc.yaml" "$work/envoy-plain.yaml" <<'PY'
import sys
text = open(sys.argv[1]).read()
start = text.index("                  - name: envoy.filters.http.ext_proc")
end = text.index("                  - name: envoy.filters.http.router")
plain = text[:start] + text[end:]
plain = plain.replace("port_value: 18000", "port_value: 18001").replace("port_value: 18901", "port_value: 18902")
open(sys.argv[2], "w").write(plain)
PY
taskset -c "$OTHER_CPUS" "$envoy" -c "$work/envoy-extproc.yaml" --disable-hot-restart --concurrency 1 -l error 2>"$work/envoy1.log" & pids+=($!)
taskset -c "$OTHER_CPUS" "$envoy" -c "$work/envoy-plain.yaml" --disable-hot-restart --concurrency 1 -l error 2>"$work/envoy2.log" & pids+=($!)
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:19090/health/ready >/dev/null && curl -sf http://127.0.0.1:18901/ready >/dev/null \
    && curl -sf http://127.0.0.1:18902/ready >/dev/null && break
  sleep 0.2
done
load=(taskset -c "$OTHER_CPUS" "$bin/examples/extproc_load" --http /api/v1/users/1 --duration "$duration"
      --concurrency "$concurrency" --header x-api-key=alice-key --hs256-secret "$BENCH_HS256_SECRET")
echo "envoy alone:      $("${load[@]}" --target 127.0.0.1:18001)"
echo "envoy + ext_proc: $("${load[@]}" --target 127.0.0.1:18000)"
