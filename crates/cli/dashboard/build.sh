#!/usr/bin/env bash
# Builds the dashboard's front end (`make dashboard`): installs the npm packages pinned in package-lock.json
# (downloads cached in ~/.cache/crew-operator/npm; reinstalled only when the lockfile changes), type-checks the
# TypeScript, and bundles it into dist/, which kubectl-crew's build.rs embeds.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '[dashboard/build.sh] %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "the dashboard needs Node.js (20 or newer) and npm (Debian/Ubuntu: apt-get install nodejs npm)"
    exit 1
fi
cache="${CREW_CACHE_DIR:-$HOME/.cache/crew-operator}/npm"
stamp=node_modules/.package-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "installing the npm packages of package-lock.json"
    npm ci --cache "$cache" --prefer-offline --no-audit --no-fund --ignore-scripts >&2
    echo "$want" > "$stamp"
fi
node_modules/.bin/tsc --noEmit -p .
node build.mjs
log "built $(du -sh dist | cut -f1) into crates/cli/dashboard/dist"
