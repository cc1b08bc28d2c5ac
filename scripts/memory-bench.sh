#!/usr/bin/env bash
# Memory under a long run (issue #10):
#
#   scripts/memory-bench.sh [ORDERS] [MAX_LIVE]     # defaults: 100000 10000
#
# A fresh nats-server and a release node (scripts/bench-lib.sh) with the
# live-actor cap at MAX_LIVE per kind and actors kept until the cap makes
# them passivate (idle timeout one hour); `orderflow bench` places ORDERS
# orders, 64 in flight; the node's RSS (now and peak) and live actors are
# printed every tenth of the run and at the end.
#
# Per live actor: run twice with the same ORDERS and two caps; the RSS
# difference over the live-actor difference is what one live actor costs,
# free of what every order costs (indexes, snapshots, allocator).
# Run by hand, never by CI; quote medians of repeated runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
ORDERS="${1:-100000}"
MAX_LIVE="${2:-10000}"

bench_setup
start_nats
bench_auth
export ORDERFLOW_ACTORS__IDLE_TIMEOUT=1h
export ORDERFLOW_ACTORS__MAX_LIVE="$MAX_LIVE"
export ORDERFLOW_TELEMETRY__POLL_INTERVAL=1s
start_node
URL="http://127.0.0.1:$HTTP_PORT"
sample() {
    python3 - "$URL" "$NODE_PID" "$1" <<'PY'
import sys, time, urllib.request
url, pid, placed = sys.argv[1], sys.argv[2], sys.argv[3]
time.sleep(1.1)  # one gauge refresh
text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
live = int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("orderflow_actors_live{")))
status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status") if ":" in l)
kib = lambda k: int(status[k].split()[0])
print(f"memory: {placed:>8} orders placed, RSS {kib('VmRSS') / 1024:.0f} MiB (peak {kib('VmHWM') / 1024:.0f} MiB), {live} live actors", flush=True)
PY
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
