# Shared by the bench scripts (sourced, not run): a release build, a fresh
# nats-server and orderflow nodes on free loopback ports with throwaway
# stores under $WORK, all stopped on exit.
#
#   bench_setup              build, make $WORK, pick ports, set the exit trap
#   start_nats               nats-server (ORDERFLOW_PROFILE=fast|durable), monitoring on
#   bench_auth               JWT mode with a secret made for this run; $ORDERFLOW_TOKEN
#   start_node               `orderflow serve` on $HTTP_PORT; waits for /readyz; $NODE_PID
#   stop_node [SIGNAL]       stops the node (TERM by default, KILL to crash it)
#   start_long_run           nats-server and a node whose entities stay in memory up to
#                            the cap (idle timeout 1 h, gauges refreshed every second); $URL
#   node_gauge FAMILY...     the node's gauges FAMILY, summed over kinds, once they settle
#                            (orderflow_actors_live: actors running; orderflow_entities_parked:
#                            states held without an actor)
#   rss_kib                  the node's resident memory now

log() { printf '[bench] %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ready() { python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/readyz', timeout=1)" 2>/dev/null; }

bench_setup() {
    "$ROOT/scripts/install-nats-server.sh" >/dev/null
    NATS_SERVER="$ROOT/.tools/bin/nats-server"
    # ORDERFLOW_BIN=<path> benches that binary instead (e.g. to compare two builds).
    if [[ -n "${ORDERFLOW_BIN:-}" ]]; then
        ORDERFLOW="$ORDERFLOW_BIN"
    else
        log "building target/release/orderflow"
        cargo build --release --quiet --bin orderflow
        ORDERFLOW="$ROOT/target/release/orderflow"
    fi
    WORK="$(mktemp -d)"
    NATS_PORT="$(free_port)"
    MONITOR_PORT="$(free_port)"
    HTTP_PORT="$(free_port)"
    NATS_PID=""
    NODE_PID=""
    trap bench_cleanup EXIT
}

bench_cleanup() {
    stop_node TERM
    if [[ -n "$NATS_PID" ]]; then
        kill -TERM "$NATS_PID" 2>/dev/null || true
        wait "$NATS_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}

start_nats() {
    local sync
    case "${ORDERFLOW_PROFILE:-fast}" in
        fast) sync="" ;;
        durable) sync="sync_interval: always" ;;
        *) log "ORDERFLOW_PROFILE must be fast or durable"; exit 2 ;;
    esac
    cat > "$WORK/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
http: 127.0.0.1:$MONITOR_PORT
jetstream { store_dir: "$WORK/nats"
  $sync
}
CONF
    "$NATS_SERVER" -c "$WORK/nats.conf" >"$WORK/nats.log" 2>&1 &
    NATS_PID=$!
    for _ in $(seq 100); do port_open "$NATS_PORT" && break; sleep 0.1; done
    export ORDERFLOW_NATS__URL="nats://127.0.0.1:$NATS_PORT"
}

# The bench is one principal sending as fast as the node answers: no rate limit.
bench_auth() {
    ORDERFLOW_AUTH__MODE=jwt
    ORDERFLOW_AUTH__HS256_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
    ORDERFLOW_HTTP__RATE_LIMIT__PER_SECOND=0
    export ORDERFLOW_AUTH__MODE ORDERFLOW_AUTH__HS256_SECRET ORDERFLOW_HTTP__RATE_LIMIT__PER_SECOND
    ORDERFLOW_TOKEN="$("$ORDERFLOW" token --role admin --sub bench --ttl 1day)"
    export ORDERFLOW_TOKEN
}

start_node() {
    ORDERFLOW_HTTP__ADDR="127.0.0.1:$HTTP_PORT" ORDERFLOW_STORE__PATH="$WORK/snapshots" ORDERFLOW_LOG=warn \
        "$ORDERFLOW" serve >>"$WORK/node.out" 2>>"$WORK/node.log" &
    NODE_PID=$!
    for _ in $(seq 600); do ready && return 0; sleep 0.05; done
    log "the node did not become ready; its log: $WORK/node.log"
    return 1
}

stop_node() {
    [[ -z "$NODE_PID" ]] && return 0
    kill "-${1:-TERM}" "$NODE_PID" 2>/dev/null || true
    # A killed node's status is not an error of the script.
    wait "$NODE_PID" 2>/dev/null || true
    NODE_PID=""
}

start_long_run() {
    bench_setup
    start_nats
    bench_auth
    export ORDERFLOW_ACTORS__IDLE_TIMEOUT=1h
    export ORDERFLOW_TELEMETRY__POLL_INTERVAL=1s
    start_node
    URL="http://127.0.0.1:$HTTP_PORT"
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$NODE_PID/status"; }

# Gauges are refreshed every telemetry.poll_interval (1 s in a long run):
# read them until two refreshes agree, for at most 10 s.
node_gauge() {
    python3 - "$URL" "$@" <<'PY'
import sys, time, urllib.request
families = tuple(f + "{" for f in sys.argv[2:])
def live():
    text = urllib.request.urlopen(sys.argv[1] + "/metrics", timeout=5).read().decode()
    return int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(families)))
deadline, last = time.monotonic() + 10, None
while True:
    now = live()
    if now == last or time.monotonic() > deadline:
        break
    last = now
    time.sleep(1.1)
print(now)
PY
}
