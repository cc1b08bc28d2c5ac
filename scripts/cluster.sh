#!/usr/bin/env bash
# Run the clustered topology on loopback, without Docker: a 3-node NATS
# cluster (nats-cluster.conf, R3 streams) and 3 orderflow nodes.
#
#   scripts/cluster.sh                 # until Ctrl-C, then stops everything
#
#   NATS clients   nats://127.0.0.1:4222,4223,4224   (routes 6222-6224, monitoring 8222-8224)
#   orderflow HTTP http://127.0.0.1:8080, 8081, 8082 (any node serves any order)
#   stores, logs   var/cluster/ (gitignored); delete it for a clean slate
#   auth           jwt mode, one HS256 secret for all nodes in var/cluster/hs256-secret;
#                  an admin token is printed at start
#
# The same members run in docker-compose.yml, and tests/support/cluster.rs
# starts the same nats-cluster.conf on free ports for the cluster tests.
# ORDERFLOW_CLUSTER_BASE_PORT shifts every port (default 0);
# ORDERFLOW_CLUSTER_NODES=1|2|3 runs that many orderflow nodes (default 3),
# e.g. to compare throughput:
#   orderflow bench --url http://127.0.0.1:8080,http://127.0.0.1:8081 ...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SHIFT="${ORDERFLOW_CLUSTER_BASE_PORT:-0}"
NODES="${ORDERFLOW_CLUSTER_NODES:-3}"
READY_TIMEOUT_SECS="${ORDERFLOW_NATS_READY_TIMEOUT:-30}"
VAR="$ROOT/var/cluster"
case "$NODES" in 1|2|3) ;; *) printf '[cluster] error: ORDERFLOW_CLUSTER_NODES must be 1, 2 or 3\n' >&2; exit 1 ;; esac

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

http_ok() {
    python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # The apps first, each waited for (they drain, hand their partitions
    # over and snapshot, which needs NATS), then the servers.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[$i]}" 2>/dev/null || true
        wait "${PIDS[$i]}" 2>/dev/null || true
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$ROOT/scripts/install-nats-server.sh" --server >/dev/null
# NATS users: the same local passwords as scripts/run.sh.
# shellcheck source=scripts/nats-passwords.sh
source "$ROOT/scripts/nats-passwords.sh"
NATS_SERVER="$ROOT/.tools/bin/nats-server"
# ORDERFLOW_BIN=<path> runs that binary instead (e.g. to compare two builds).
if [[ -n "${ORDERFLOW_BIN:-}" ]]; then
    APP_BIN="$ORDERFLOW_BIN"
else
    log "building orderflow (release)"
    cargo build --release --bin orderflow
    APP_BIN="$ROOT/target/release/orderflow"
fi
mkdir -p "$VAR"

client_port() { echo $((4222 + SHIFT + $1)); }
route() { echo "nats://127.0.0.1:$((6222 + SHIFT + $1))"; }
URLS="nats://127.0.0.1:$(client_port 0),nats://127.0.0.1:$(client_port 1),nats://127.0.0.1:$(client_port 2)"

set -m
for i in 0 1 2; do
    name="n$((i + 1))"
    log "starting nats-server $name on $(client_port "$i") (log $VAR/$name.log)"
    NATS_NAME="$name" NATS_HOST=127.0.0.1 NATS_PORT="$(client_port "$i")" \
        NATS_HTTP_PORT=$((8222 + SHIFT + i)) NATS_CLUSTER_PORT=$((6222 + SHIFT + i)) \
        NATS_ROUTE_1="$(route 0)" NATS_ROUTE_2="$(route 1)" NATS_ROUTE_3="$(route 2)" \
        NATS_STORE="$VAR/$name" NATS_SYNC_INTERVAL="${NATS_SYNC_INTERVAL:-120s}" \
        "$NATS_SERVER" -c "$ROOT/nats-cluster.conf" </dev/null >>"$VAR/$name.log" 2>&1 &
    PIDS+=($!)
done

deadline=$((SECONDS + READY_TIMEOUT_SECS))
for i in 0 1 2; do
    until http_ok "http://127.0.0.1:$((8222 + SHIFT + i))/healthz"; do
        ((SECONDS < deadline)) || die "nats-server n$((i + 1)) not healthy after ${READY_TIMEOUT_SECS}s (see $VAR/n$((i + 1)).log)"
        sleep 0.2
    done
done
until http_ok "http://127.0.0.1:$((8222 + SHIFT))/healthz" && python3 - "http://127.0.0.1:$((8222 + SHIFT))/jsz" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if (json.load(r).get("meta_cluster") or {}).get("leader") else 1)
PY
do
    ((SECONDS < deadline)) || die "no JetStream meta leader after ${READY_TIMEOUT_SECS}s (see $VAR/n1.log)"
    sleep 0.2
done
log "NATS cluster ready: $URLS"

APPS=$(seq 0 $((NODES - 1)))
# One HS256 secret for every node (dev mode would give each node its own, so
# a token from one would not open another): generated once into var/cluster/.
SECRET_FILE="$VAR/hs256-secret"
if [[ ! -s "$SECRET_FILE" ]]; then
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >"$SECRET_FILE")
fi
export ORDERFLOW_AUTH__MODE=jwt
ORDERFLOW_AUTH__HS256_SECRET="$(cat "$SECRET_FILE")"
export ORDERFLOW_AUTH__HS256_SECRET
ADMIN_TOKEN="$("$APP_BIN" token --role admin --sub operator --ttl 12h)"

# One after the other: the first creates the R3 streams; nodes creating them
# all at once only queue up behind the meta leader.
for i in $APPS; do
    port=$((8080 + SHIFT + i))
    log "starting orderflow node $((i + 1)) on http://127.0.0.1:$port (log $VAR/app$((i + 1)).log)"
    ORDERFLOW_NATS__URL="$URLS" ORDERFLOW_NATS__REPLICAS=3 \
        ORDERFLOW_HTTP__ADDR="127.0.0.1:$port" ORDERFLOW_STORE__PATH="$VAR/app$((i + 1))" \
        "$APP_BIN" serve </dev/null >>"$VAR/app$((i + 1)).log" 2>&1 &
    PIDS+=($!)
    until http_ok "http://127.0.0.1:$port/readyz"; do
        ((SECONDS < deadline + 120)) || die "orderflow node $((i + 1)) not ready (see $VAR/app$((i + 1)).log)"
        sleep 0.2
    done
done
log "$NODES orderflow node(s) ready from http://127.0.0.1:$((8080 + SHIFT)); Ctrl-C stops all"
log "an admin token, valid on every node for 12 h (orderflow token --role ... --sub ... signs others"
log "with ORDERFLOW_AUTH__HS256_SECRET=\$(cat $SECRET_FILE)):"
printf 'export ORDERFLOW_TOKEN=%s\n' "$ADMIN_TOKEN"
wait -n || true
die "a process exited; see the logs in $VAR"
