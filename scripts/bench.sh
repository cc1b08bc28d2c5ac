#!/usr/bin/env bash
# Measure orderflow on this machine: a fresh nats-server (fast or durable
# profile) and a release node on free loopback ports with throwaway stores,
# then `orderflow bench` against them. Everything is stopped at the end.
#
#   scripts/bench.sh [args for `orderflow bench`...]
#   ORDERFLOW_PROFILE=durable scripts/bench.sh --orders 2000 --concurrency 64
#   scripts/bench.sh --orders 500 --concurrency 1        # latency at 1 in flight
#   scripts/bench.sh --orders 20000 --rate 1000          # open loop
#
# The report includes the node's and nats-server's CPU and RSS (their pids
# are passed for you). Benches are run by hand, never by CI; quote medians of
# repeated runs, since machines are noisy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[bench] %s\n' "$*" >&2; }

"$ROOT/scripts/install-nats-server.sh" >/dev/null
NATS_SERVER="$ROOT/.tools/bin/nats-server"
log "building target/release/orderflow"
cargo build --release --quiet --bin orderflow
ORDERFLOW="$ROOT/target/release/orderflow"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

WORK="$(mktemp -d)"
NATS_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
NATS_PID=""
NODE_PID=""
cleanup() {
    [[ -n "$NODE_PID" ]] && kill -TERM "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
    [[ -n "$NATS_PID" ]] && kill -TERM "$NATS_PID" 2>/dev/null && wait "$NATS_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

case "${ORDERFLOW_PROFILE:-fast}" in
    fast) SYNC="" ;;
    durable) SYNC="sync_interval: always" ;;
    *) log "ORDERFLOW_PROFILE must be fast or durable"; exit 2 ;;
esac
cat > "$WORK/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
jetstream { store_dir: "$WORK/nats"
  $SYNC
}
CONF
"$NATS_SERVER" -c "$WORK/nats.conf" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
for _ in $(seq 100); do port_open "$NATS_PORT" && break; sleep 0.1; done

export ORDERFLOW_NATS__URL="nats://127.0.0.1:$NATS_PORT"
# JWT mode with a secret made for this run (never stored), and no rate limit:
# the bench is one principal sending as fast as the node answers.
ORDERFLOW_AUTH__MODE=jwt
ORDERFLOW_AUTH__HS256_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
ORDERFLOW_HTTP__RATE_LIMIT__PER_SECOND=0
export ORDERFLOW_AUTH__MODE ORDERFLOW_AUTH__HS256_SECRET ORDERFLOW_HTTP__RATE_LIMIT__PER_SECOND
ORDERFLOW_TOKEN="$("$ORDERFLOW" token --role admin --sub bench --ttl 1day)"
export ORDERFLOW_TOKEN
ORDERFLOW_HTTP__ADDR="127.0.0.1:$HTTP_PORT" ORDERFLOW_STORE__PATH="$WORK/snapshots" ORDERFLOW_LOG=warn \
    "$ORDERFLOW" serve >"$WORK/node.out" 2>"$WORK/node.log" &
NODE_PID=$!
for _ in $(seq 300); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/readyz', timeout=1)" 2>/dev/null && break
    sleep 0.1
done
log "profile ${ORDERFLOW_PROFILE:-fast}: nats-server pid $NATS_PID on $NATS_PORT, node pid $NODE_PID on $HTTP_PORT"
"$ORDERFLOW" bench --url "http://127.0.0.1:$HTTP_PORT" --node-pid "$NODE_PID" --nats-pid "$NATS_PID" "$@"
