#!/usr/bin/env bash
# Install promtool (rule checks and `promtool test rules`) into ./.tools/bin from Debian's
# `prometheus` package: the .deb is downloaded with apt-get and only promtool is extracted (no
# Prometheus service is installed). Idempotent. Prints the version.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.tools/bin"

if [[ ! -x "$bin/promtool" ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && { apt-get download prometheus >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get download prometheus >/dev/null; }; })
    dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
    mkdir -p "$bin"
    install -m 0755 "$work/root/usr/bin/promtool" "$bin/promtool"
fi

"$bin/promtool" --version | head -n 1
