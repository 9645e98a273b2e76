#!/usr/bin/env bash
# Installs kubernetes-validate (PyPI) into its own virtualenv, for tests/chart.rs, which checks
# the manifests `helm template charts/email-operator` renders against the Kubernetes OpenAPI
# schemas it ships (offline). helm itself comes from .ci/setup-kubectl.sh.
# Idempotent: does nothing when the venv is already fit.
#
# Prints the kubernetes-validate path; the test finds it there by default, or via
# KUBERNETES_VALIDATE.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
VENV="${CHART_VENV:-$HOME/.cache/email-operator/chart-venv}"
REQUIREMENTS=("kubernetes-validate>=1.34,<2")

suitable() {
    [ -x "$VENV/bin/kubernetes-validate" ] || return 1
    "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m
import kubernetes_validate  # noqa: F401
print(f"kubernetes-validate {m.version('kubernetes-validate')}")
PY
}

if found="$(suitable)"; then
    echo "kubernetes-validate already set up: $found"
else
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
    found="$(suitable)" || { echo "kubernetes-validate installed in $VENV but not usable" >&2; exit 1; }
    echo "installed: $found"
fi
echo "kubernetes-validate: $VENV/bin/kubernetes-validate"
