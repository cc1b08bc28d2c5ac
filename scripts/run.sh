#!/usr/bin/env bash
# Run orderflow locally: one NATS JetStream server + one orderflow node.
#
#   scripts/run.sh [extra args for `orderflow serve`...]
#   ORDERFLOW_PROFILE=durable scripts/run.sh   # fsync-before-ack NATS profile
#
# 1. installs the pinned nats-server into .tools/ if it is missing;
# 2. builds `target/release/orderflow`;
# 3. starts nats-server (nats.conf, or nats-durable.conf for
#    ORDERFLOW_PROFILE=durable) with its store in var/nats and its log in
#    var/log/nats-server.log — unless something already listens on
#    127.0.0.1:4222, which is then reused as is;
# 4. waits (with a deadline) until JetStream reports healthy;
# 5. runs `orderflow serve` (HTTP on 127.0.0.1:8080 by default; it creates the
#    streams itself) until it exits or you press Ctrl-C;
# 6. then stops the nats-server it started (never one it reused). The store
#    in var/nats is kept; delete it for a clean slate.
# Before 3., it generates local NATS user passwords into var/ if unset (below).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

NATS_HOST=127.0.0.1
NATS_PORT=4222       # must match `listen` in nats.conf / nats-durable.conf
MONITOR_PORT=8222    # must match `http_port` in nats.conf / nats-durable.conf
HEALTH_URL="http://$NATS_HOST:$MONITOR_PORT/healthz?js-enabled-only=true"
READY_TIMEOUT_SECS="${ORDERFLOW_NATS_READY_TIMEOUT:-30}"

log() { printf '[run] %s\n' "$*" >&2; }
die() { printf '[run] error: %s\n' "$*" >&2; exit 1; }

case "${ORDERFLOW_PROFILE:-fast}" in
    fast|"") NATS_CONF="$ROOT/nats.conf" ;;
    durable) NATS_CONF="$ROOT/nats-durable.conf" ;;
    *) die "ORDERFLOW_PROFILE must be 'fast' (default) or 'durable', got '$ORDERFLOW_PROFILE'" ;;
esac

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

healthy() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 2 -o /dev/null "$HEALTH_URL" 2>/dev/null
    else
        python3 - "$HEALTH_URL" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
    fi
}

NATS_PID=""
APP_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$APP_PID" ]] && kill -0 "$APP_PID" 2>/dev/null; then
        kill -TERM "$APP_PID" 2>/dev/null || true
        wait "$APP_PID" 2>/dev/null || true
    fi
    if [[ -n "$NATS_PID" ]] && kill -0 "$NATS_PID" 2>/dev/null; then
        log "stopping nats-server (pid $NATS_PID)"
        kill -TERM "$NATS_PID" 2>/dev/null || true
        # Give JetStream a moment to flush and close its store, then insist.
        for _ in $(seq 1 100); do
            kill -0 "$NATS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$NATS_PID" 2>/dev/null || true
        wait "$NATS_PID" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# NATS users: local development passwords (scripts/nats-passwords.sh).
# shellcheck source=scripts/nats-passwords.sh
source "$ROOT/scripts/nats-passwords.sh"

# 1. nats-server
NATS_SERVER="$ROOT/.tools/bin/nats-server"
"$ROOT/scripts/install-nats-server.sh" --server >/dev/null

# 2. orderflow
log "building orderflow (release)"
cargo build --release --bin orderflow
APP_BIN="$ROOT/target/release/orderflow"

# Job control: background jobs get their own process group, so a Ctrl-C in the
# terminal reaches only this script, which then shuts things down in order
# (the app first, so it can drain, then nats-server).
set -m

# 3. NATS
if port_open "$NATS_HOST" "$NATS_PORT"; then
    log "something already listens on $NATS_HOST:$NATS_PORT; reusing it (not starting nats-server)"
    if ! healthy; then
        log "warning: $HEALTH_URL does not answer ok; is JetStream enabled on that server?"
    fi
else
    mkdir -p "$ROOT/var/nats" "$ROOT/var/log"
    NATS_LOG="$ROOT/var/log/nats-server.log"
    log "starting nats-server ($(basename "$NATS_CONF"), store $ROOT/var/nats, log $NATS_LOG)"
    # The config's relative `store_dir: "var/nats"` resolves against the cwd,
    # which is the repository root here. (`-sd` cannot be combined with a
    # config file that sets store_dir: the server rejects the duplicate.)
    "$NATS_SERVER" -c "$NATS_CONF" </dev/null >>"$NATS_LOG" 2>&1 &
    NATS_PID=$!

    # 4. readiness: poll with a deadline, never a fixed sleep.
    deadline=$((SECONDS + READY_TIMEOUT_SECS))
    until healthy; do
        if ! kill -0 "$NATS_PID" 2>/dev/null; then
            NATS_PID=""
            tail -n 30 "$NATS_LOG" >&2 || true
            die "nats-server exited during startup (log above: $NATS_LOG)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$NATS_LOG" >&2 || true
            die "nats-server not healthy at $HEALTH_URL after ${READY_TIMEOUT_SECS}s (log: $NATS_LOG)"
        fi
        sleep 0.1
    done
    log "nats-server ready (pid $NATS_PID): nats://$NATS_HOST:$NATS_PORT, monitoring http://$NATS_HOST:$MONITOR_PORT"
fi

# 5. the app, in the background so that INT/TERM reach this script's traps,
# which forward them exactly once.
log "starting: $APP_BIN serve $*"
"$APP_BIN" serve "$@" &
APP_PID=$!
forward() {
    log "received SIG$1; stopping orderflow (pid $APP_PID)"
    kill -s "$1" "$APP_PID" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM
app_rc=0
while true; do
    # `wait` returns early (status > 128) when a trapped signal arrives;
    # keep waiting until the app has really exited.
    if wait "$APP_PID"; then app_rc=0; else app_rc=$?; fi
    kill -0 "$APP_PID" 2>/dev/null || break
done
APP_PID=""
log "orderflow exited with status $app_rc"
exit "$app_rc"
