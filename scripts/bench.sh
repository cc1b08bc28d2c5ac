#!/usr/bin/env bash
# Measure orderflow on this machine: a fresh nats-server (fast or durable
# profile) and a release node on free loopback ports with throwaway stores,
# then `orderflow bench` against them. Everything is stopped at the end.
#
#   scripts/bench.sh [args for `orderflow bench`...]
#   ORDERFLOW_PROFILE=durable scripts/bench.sh --orders 2000 --concurrency 64
#   scripts/bench.sh --orders 500 --concurrency 1        # latency at 1 in flight
#   scripts/bench.sh --orders 20000 --rate 1000          # open loop
#   scripts/bench.sh --broker --orders 100000 --concurrency 256   # the broker's ceiling
#   scripts/bench.sh --broker --orders 2000 --concurrency 1       # one hop's latency
#
# A saga run first measures the broker's ceiling on the same nats-server
# (a short --broker probe, on a stream of its own that it deletes), so the
# report states the saga's stored messages per second as a share of it;
# ORDERFLOW_BROKER_CEILING=<stored messages/s> skips the probe.
# ORDERFLOW_BIN=<path> benches that binary instead of building one (A/B runs).
#
# The report includes the node's and nats-server's CPU and RSS (their pids
# are passed for you). Benches are run by hand, never by CI; quote medians of
# repeated runs, since machines are noisy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
bench_setup
start_nats
if [[ " $* " == *" --broker "* ]]; then
    log "profile ${ORDERFLOW_PROFILE:-fast}: nats-server pid $NATS_PID on $NATS_PORT (no node: the broker alone)"
    "$ORDERFLOW" bench --nats-pid "$NATS_PID" "$@"
    exit
fi
CEILING="${ORDERFLOW_BROKER_CEILING:-}"
if [[ -z "$CEILING" ]]; then
    CEILING="$("$ORDERFLOW" bench --broker --orders 50000 --concurrency 256 --duration 10s --json \
        | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["stored_per_second"]))')"
    log "broker ceiling on this nats-server: $CEILING stored messages/s"
fi
bench_auth
start_node
log "profile ${ORDERFLOW_PROFILE:-fast}: nats-server pid $NATS_PID on $NATS_PORT, node pid $NODE_PID on $HTTP_PORT"
"$ORDERFLOW" bench --url "http://127.0.0.1:$HTTP_PORT" --node-pid "$NODE_PID" --nats-pid "$NATS_PID" \
    --nats-monitor "http://127.0.0.1:$MONITOR_PORT" --broker-ceiling "$CEILING" "$@"
