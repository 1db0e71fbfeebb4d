#!/usr/bin/env bash
# Install Chromium (Debian package chromium) for the dashboard's browser tests (crates/e2e/tests/e2e_dashboard.rs),
# which playwright-core drives at /usr/bin/chromium: nothing downloads a browser of its own. Idempotent: does
# nothing when /usr/bin/chromium (or $CHROMIUM) is there.
#
# Needs root and apt-get (Debian/Ubuntu) to install. Elsewhere it only explains what to do and fails.
set -euo pipefail

log() { printf '[install-chromium.sh] %s\n' "$*" >&2; }

browser="${CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$browser" ]]; then
    log "Chromium already installed ($browser)"
    exit 0
fi

if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "cannot install Chromium here: this needs root and apt-get (found uid $(id -u)$(command -v apt-get >/dev/null || echo ', no apt-get'))."
    log "Install Chromium (Debian/Ubuntu: apt-get install chromium), or set CHROMIUM to a Chromium or Chrome binary."
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "installing Debian package chromium"
if ! apt-get install -y --no-install-recommends chromium >&2; then
    log "apt-get install failed; refreshing the package lists and retrying"
    apt-get update >&2
    apt-get install -y --no-install-recommends chromium >&2
fi
[[ -x "$browser" ]] || { log "ERROR: no $browser after installing"; exit 1; }
log "installed $("$browser" --version 2>/dev/null || echo "$browser")"
