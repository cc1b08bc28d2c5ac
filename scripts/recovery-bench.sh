#!/usr/bin/env bash
# Memory per live actor, and recovery time on a long journal (issue #10):
#
#   scripts/recovery-bench.sh [ORDERS] [SIGNAL]     # defaults: 100000 KILL
#
# 1. A fresh nats-server and a release node (scripts/bench-lib.sh);
#    entities kept in memory for an hour, so every order leaves its
#    entities there up to the cap (`actors.max_live`, 10,000 per kind by
#    default).
# 2. `orderflow bench --orders ORDERS --concurrency 64` fills the journal.
# 3. Memory: the node's RSS growth over the run divided by the entities it
#    holds (`orderflow_actors_live` + `orderflow_entities_parked`, summed
#    over kinds); an upper bound, since the growth also holds what every
#    order costs.
# 4. Recovery: the node is stopped with SIGNAL (KILL: a crash; TERM: a clean
#    stop that snapshots), started again on the same stores, and timed from
#    its start to /readyz, and to a new order placed and COMPLETED.
# Run by hand, never by CI; quote medians of repeated runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
ORDERS="${1:-100000}"
SIGNAL="${2:-KILL}"

start_long_run
RSS_BEFORE="$(rss_kib)"
LIVE_BEFORE="$(node_gauge orderflow_actors_live orderflow_entities_parked)"
log "filling the journal: $ORDERS orders"
"$ORDERFLOW" bench --url "$URL" --orders "$ORDERS" --concurrency 64 --duration 1h --json > "$WORK/fill.json"
RSS_AFTER="$(rss_kib)"
LIVE_AFTER="$(node_gauge orderflow_actors_live orderflow_entities_parked)"
python3 - "$WORK/fill.json" "$RSS_BEFORE" "$RSS_AFTER" "$LIVE_BEFORE" "$LIVE_AFTER" <<'PY'
import json, sys
fill = json.load(open(sys.argv[1]))
rss_before, rss_after, live_before, live_after = map(int, sys.argv[2:6])
live = live_after - live_before
print(f"fill:     {fill['orders']} orders at {fill['orders_per_second']:.0f}/s, outcomes {fill['outcomes']}, errors {fill['errors']}")
print(f"memory:   RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB with {live} more entities in memory: "
      f"{(rss_after - rss_before) / max(live, 1):.1f} KiB per entity (upper bound)")
PY

log "stopping the node with SIG$SIGNAL and starting it again"
stop_node "$SIGNAL"
STARTED="$(date +%s.%N)"
start_node
READY="$(date +%s.%N)"
BODY='{"customer_id":"recovery","items":[{"sku":"RECOVERY-1","quantity":1,"unit_price":100}],"payment_method":"tok_visa"}'
curl -sf -X POST -H "authorization: Bearer $ORDERFLOW_TOKEN" -H 'content-type: application/json' \
    -d '{"quantity":10}' "$URL/api/v1/skus/RECOVERY-1/restock" >/dev/null
STATUS="$(curl -sf -X POST -H "authorization: Bearer $ORDERFLOW_TOKEN" -H 'content-type: application/json' \
    -d "$BODY" "$URL/api/v1/orders?wait=30s" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
SERVED="$(date +%s.%N)"
python3 -c "
started, ready, served = $STARTED, $READY, $SERVED
print(f'recovery: ready {ready - started:.2f} s after the restart; a new order $STATUS {served - started:.2f} s after it')"
