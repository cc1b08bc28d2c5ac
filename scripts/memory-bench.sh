#!/usr/bin/env bash
# Memory under a long run (issue #10):
#
#   scripts/memory-bench.sh [ORDERS] [MAX_LIVE]     # defaults: 100000 10000
#
# A fresh nats-server and a release node (scripts/bench-lib.sh) with the
# cap at MAX_LIVE per kind (actors running, and states parked without an
# actor) and entities kept in memory until the cap makes them passivate
# (idle timeout one hour); `orderflow bench` places ORDERS orders, 64 in
# flight; the node's RSS (now and peak), actors running and states parked
# are printed every tenth of the run and at the end.
#
# Per entity in memory: run twice with the same ORDERS and two caps; the
# RSS difference over the difference in entities held (running + parked)
# is what one costs, free of what every order costs (indexes, snapshots,
# allocator).
# Run by hand, never by CI; quote medians of repeated runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
ORDERS="${1:-100000}"
MAX_LIVE="${2:-10000}"

export ORDERFLOW_ACTORS__MAX_LIVE="$MAX_LIVE"
start_long_run
sample() {
    local live parked peak
    live="$(node_gauge orderflow_actors_live)"
    parked="$(node_gauge orderflow_entities_parked)"
    peak="$(awk '/^VmHWM/ {print $2}' "/proc/$NODE_PID/status")"
    printf 'memory: %8s orders placed, RSS %d MiB (peak %d MiB), %s entities in memory (%s actors running, %s parked)\n' \
        "$1" "$(( $(rss_kib) / 1024 ))" "$(( peak / 1024 ))" "$(( live + parked ))" "$live" "$parked"
}
sample 0
STEP=$(( (ORDERS + 9) / 10 ))
DONE=0
while (( DONE < ORDERS )); do
    N=$(( ORDERS - DONE < STEP ? ORDERS - DONE : STEP ))
    "$ORDERFLOW" bench --url "$URL" --orders "$N" --concurrency 64 --duration 1h --json > "$WORK/fill.json"
    DONE=$(( DONE + N ))
    sample "$DONE"
done
python3 -c "import json; f = json.load(open('$WORK/fill.json')); print(f\"last tenth: {f['orders_per_second']:.0f} orders/s, errors {f['errors']}\")"
