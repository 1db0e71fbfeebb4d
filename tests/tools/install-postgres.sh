#!/usr/bin/env bash
# Install PostgreSQL (Debian package postgresql) for the archive tests and `make demo`: the test harness
# (crates/testkit/src/postgres.rs) starts its own server from /usr/lib/postgresql/<version>/bin in a temporary
# directory, as the user `postgres` when run as root. Idempotent: does nothing when a server binary is there.
#
# Needs root and apt-get (Debian/Ubuntu) to install. Elsewhere it only explains what to do and fails: the archive
# tests cannot run without a PostgreSQL server (set CREW_POSTGRES_BIN to the directory of another installation's
# `postgres`, `initdb`, `pg_isready` and `psql`).
set -euo pipefail

log() { printf '[install-postgres.sh] %s\n' "$*" >&2; }

found() {
    if [[ -n "${CREW_POSTGRES_BIN:-}" ]]; then
        [[ -x "$CREW_POSTGRES_BIN/postgres" ]]
    else
        compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && id postgres >/dev/null 2>&1
    fi
}

if found; then
    log "PostgreSQL already installed ($(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)${CREW_POSTGRES_BIN:+ / $CREW_POSTGRES_BIN})"
    exit 0
fi

if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "cannot install PostgreSQL here: this needs root and apt-get (found uid $(id -u)$(command -v apt-get >/dev/null || echo ', no apt-get'))."
    log "Install PostgreSQL (Debian/Ubuntu: apt-get install postgresql), or set CREW_POSTGRES_BIN."
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "installing Debian package postgresql"
if ! apt-get install -y --no-install-recommends postgresql >&2; then
    log "apt-get install failed; refreshing the package lists and retrying"
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
fi
found || { log "ERROR: no /usr/lib/postgresql/*/bin/postgres after installing"; exit 1; }
log "installed $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
