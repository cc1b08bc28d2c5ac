#!/usr/bin/env bash
# What the console's browser tests need (tests/browser/, run by tests/it/console.rs):
#   - Debian's chromium at /usr/bin/chromium (apt-get, as root or through sudo);
#   - the pinned playwright-core from tests/browser/package-lock.json (npm ci;
#     playwright-core never downloads a browser of its own).
# Idempotent: each part is skipped when already in place. Needs node and npm.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_TESTS="$ROOT/tests/browser"

log() { printf '[install-browser] %s\n' "$*" >&2; }
die() { printf '[install-browser] error: %s\n' "$*" >&2; exit 1; }

if [[ ! -x /usr/bin/chromium ]]; then
    if [[ "$(id -u)" -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        die "/usr/bin/chromium is missing and neither root nor sudo is available to install it"
    fi
    log "installing Debian's chromium"
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium >/dev/null
fi

command -v npm >/dev/null 2>&1 || die "npm not found; install node.js (>= 18) with npm"
wanted="$(node -e 'console.log(require(process.argv[1]).dependencies["playwright-core"])' "$BROWSER_TESTS/package.json")"
installed="$(node -e 'try { console.log(require(process.argv[1]).version) } catch { console.log("") }' \
    "$BROWSER_TESTS/node_modules/playwright-core/package.json")"
if [[ "$installed" != "$wanted" ]]; then
    log "npm ci in tests/browser (playwright-core $wanted)"
    (cd "$BROWSER_TESTS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
