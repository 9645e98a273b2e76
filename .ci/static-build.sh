#!/usr/bin/env bash
# Builds the static (musl) `email-operator` binary the Dockerfile ships, and checks it is
# static. Installs what it needs (the musl target, musl-gcc for the C parts of ring and
# aws-lc) when it can. PROFILE=release for the image; CI uses the faster dev profile, which
# compiles the same code.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-musl
PROFILE="${PROFILE:-dev}"

rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
if ! command -v musl-gcc >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
    else
        echo "musl-gcc is missing: install musl-tools (Debian/Ubuntu) or musl (Alpine)" >&2
        exit 1
    fi
fi

export CC_x86_64_unknown_linux_musl=musl-gcc
cargo build --locked --profile "$PROFILE" --target "$TARGET" --bin email-operator
dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
bin="target/$TARGET/$dir/email-operator"
if ! ldd "$bin" 2>&1 | grep -Eq "not a dynamic executable|statically linked"; then
    echo "$bin is dynamically linked" >&2
    exit 1
fi
"$bin" --version
echo "static binary: $bin ($(du -h "$bin" | cut -f1))"
