#!/usr/bin/env bash
# Throughput of the clustered topology with 1, 2 or 3 app nodes: starts
# scripts/cluster.sh (3 NATS members, R3 streams) from a clean var/cluster/
# on shifted ports, runs `orderflow bench` spread round-robin over the
# nodes' HTTP ports, prints one summary line and stops everything.
#
#   scripts/cluster-bench.sh NODES [ORDERS] [CONCURRENCY]
#   for n in 1 2 3; do scripts/cluster-bench.sh $n 2000 64; done
#
# ORDERFLOW_BIN=<path> benches that binary instead of building one (A/B runs).
# The JSON report is kept in var/cluster-bench-<NODES>.json. Run by hand,
# never by CI; quote medians of repeated runs, since machines are noisy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NODES="${1:?usage: scripts/cluster-bench.sh NODES [ORDERS] [CONCURRENCY]}"
ORDERS="${2:-2000}"
CONCURRENCY="${3:-64}"
SHIFT=200
LOG="$ROOT/var/cluster-bench-$NODES.log"
REPORT="$ROOT/var/cluster-bench-$NODES.json"

rm -rf "$ROOT/var/cluster"
mkdir -p "$ROOT/var"
# The bench is one principal: no per-principal rate limit for it.
ORDERFLOW_HTTP__RATE_LIMIT__PER_SECOND=0 ORDERFLOW_CLUSTER_NODES="$NODES" ORDERFLOW_CLUSTER_BASE_PORT="$SHIFT" \
    "$ROOT/scripts/cluster.sh" >"$LOG" 2>&1 &
CLUSTER=$!
trap 'kill -TERM $CLUSTER 2>/dev/null || true; wait $CLUSTER 2>/dev/null || true' EXIT

for _ in $(seq 1 1200); do
    grep -q 'export ORDERFLOW_TOKEN=' "$LOG" && break
    kill -0 "$CLUSTER" 2>/dev/null || { tail -20 "$LOG" >&2; exit 1; }
    sleep 0.5
done
eval "$(grep -m1 'export ORDERFLOW_TOKEN=' "$LOG")"
set -a
# shellcheck source=/dev/null
source "$ROOT/var/nats-passwords.env"
set +a

URLS=$(for i in $(seq 0 $((NODES - 1))); do printf 'http://127.0.0.1:%d,' $((8080 + SHIFT + i)); done)
NATS="nats://127.0.0.1:$((4222 + SHIFT)),nats://127.0.0.1:$((4223 + SHIFT)),nats://127.0.0.1:$((4224 + SHIFT))"
ORDERFLOW_NATS__URL="$NATS" ORDERFLOW_NATS__USER=orderflow ORDERFLOW_NATS__PASSWORD="$NATS_ORDERFLOW_PASSWORD" \
    "${ORDERFLOW_BIN:-$ROOT/target/release/orderflow}" bench --url "${URLS%,}" --orders "$ORDERS" --concurrency "$CONCURRENCY" --json \
    >"$REPORT"
python3 - "$REPORT" "$NODES" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
lat = d.get("latency", {})
print(f"{sys.argv[2]} node(s): {d.get('orders_per_second', 0):.0f} orders/s, p50 {lat.get('p50_ms')} ms, "
      f"p99 {lat.get('p99_ms')} ms, max {lat.get('max_ms')} ms; outcomes {d.get('outcomes')}; errors {d.get('errors')}")
PY
