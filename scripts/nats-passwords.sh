# Sourced by scripts/run.sh and scripts/cluster.sh (expects ROOT and a `log`
# function).
#
# NATS users (nats.conf / nats-permissions.conf): the server takes the
# passwords from NATS_ORDERFLOW_PASSWORD / NATS_INSPECTOR_PASSWORD, the app
# from ORDERFLOW_NATS__USER / ORDERFLOW_NATS__PASSWORD. Unless they are set,
# local development passwords are generated once into var/nats-passwords.env
# (gitignored, mode 600) and reused; `source` it to use the nats CLI as the
# inspector (README, Security → NATS).
PASSWORDS_FILE="$ROOT/var/nats-passwords.env"
if [[ -z "${NATS_ORDERFLOW_PASSWORD:-}" || -z "${NATS_INSPECTOR_PASSWORD:-}" ]]; then
    if [[ ! -f "$PASSWORDS_FILE" ]]; then
        mkdir -p "$ROOT/var"
        # A letter first: nats-server parses a substituted value as config, and
        # an all-digit password would become a number.
        gen() { printf 'pw%s' "$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')"; }
        (umask 077 && printf 'NATS_ORDERFLOW_PASSWORD=%s\nNATS_INSPECTOR_PASSWORD=%s\n' "$(gen)" "$(gen)" >"$PASSWORDS_FILE")
        log "generated local NATS passwords into $PASSWORDS_FILE"
    fi
    set -a
    # shellcheck source=/dev/null
    source "$PASSWORDS_FILE"
    set +a
fi
export NATS_ORDERFLOW_PASSWORD NATS_INSPECTOR_PASSWORD
export ORDERFLOW_NATS__USER="${ORDERFLOW_NATS__USER:-orderflow}"
export ORDERFLOW_NATS__PASSWORD="${ORDERFLOW_NATS__PASSWORD:-$NATS_ORDERFLOW_PASSWORD}"
