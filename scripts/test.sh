#!/usr/bin/env bash
# The whole check suite, as CI runs it (.ci/run calls this script).
#
#   scripts/test.sh [extra args for `cargo nextest run`...]
#
# 1. installs the pinned nats-server and the python interop-test deps into
#    .tools/ if missing (scripts/install-nats-server.sh --all);
# 2. the Grafana/Prometheus assets' queries checked against the metric catalog;
#    docker-compose.yml validated (scripts/check-compose.sh);
#    cargo fmt --check, cargo clippy -D warnings;
# 3. cargo nextest run over the whole workspace, with:
#      ORDERFLOW_NATS_SERVER  absolute path of the nats-server binary the test
#                             harness (tests/support/nats.rs) starts
#      ORDERFLOW_PYTHON       absolute path of the python interpreter for the
#                             python interop tests
#      PYTHONPATH             .tools/py prepended (nats-py, msgpack)
#    Integration tests start their own nats-server processes on free loopback
#    ports with temporary store dirs; nothing needs to be running beforehand.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[test] %s\n' "$*" >&2; }

PYTHON="${PYTHON:-python3}"
"$ROOT/scripts/install-nats-server.sh" --all >/dev/null
"$ROOT/scripts/install-browser.sh"

ORDERFLOW_NATS_SERVER="$ROOT/.tools/bin/nats-server"
ORDERFLOW_PYTHON="$("$PYTHON" -c 'import sys; print(sys.executable)')"
PYTHONPATH="$ROOT/.tools/py${PYTHONPATH:+:$PYTHONPATH}"
export ORDERFLOW_NATS_SERVER ORDERFLOW_PYTHON PYTHONPATH
log "ORDERFLOW_NATS_SERVER=$ORDERFLOW_NATS_SERVER ($("$ORDERFLOW_NATS_SERVER" --version))"
log "ORDERFLOW_PYTHON=$ORDERFLOW_PYTHON"
log "PYTHONPATH=$PYTHONPATH"

if ! cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest not found; installing it"
    cargo install cargo-nextest --locked
fi

log "deploy assets: every metric the dashboard and alerts query is exported"
"$PYTHON" "$ROOT/tests/interop/check_deploy_assets.py"

log "docker-compose.yml validates (docker compose config)"
"$ROOT/scripts/check-compose.sh"

log "cargo fmt --all -- --check"
cargo fmt --all -- --check

log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo nextest run --workspace --all-targets --no-fail-fast $*"
cargo nextest run --workspace --all-targets --no-fail-fast "$@"
