#!/usr/bin/env bash
# Validates docker-compose.yml the way `docker compose config` does, with
# placeholder passwords (the real ones come from your environment or .env).
# Uses the Compose v2 plugin when the docker CLI has it, else the standalone
# docker-compose; installs Debian's docker-compose (as root or through sudo)
# when neither is there. Needs no Docker daemon.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[check-compose] %s\n' "$*" >&2; }
die() { printf '[check-compose] error: %s\n' "$*" >&2; exit 1; }

if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    if ! command -v docker-compose >/dev/null 2>&1; then
        if [[ "$(id -u)" -eq 0 ]]; then
            as_root=()
        elif command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
        else
            die "neither docker compose nor docker-compose is installed, and no root or sudo to install it"
        fi
        log "installing Debian's docker-compose"
        "${as_root[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    fi
    compose=(docker-compose)
fi

log "${compose[*]} config -q"
NATS_ORDERFLOW_PASSWORD=placeholder NATS_INSPECTOR_PASSWORD=placeholder ORDERFLOW_AUTH_SECRET=placeholder \
    "${compose[@]}" --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" config -q
