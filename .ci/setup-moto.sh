#!/usr/bin/env bash
# Installs moto's standalone server (PyPI "moto[server]") into its own virtualenv, for
# testbed/tests/contract_moto.rs, which uses it as a third-party SES v2 endpoint to check the
# SES stand-in's wire format against. Idempotent: does nothing when the venv is already fit.
#
# Why a venv: current aws-sdk-sesv2 lists identities with `POST /v2/email/list-identities`.
# moto routes requests through botocore's service model, which has that route from botocore
# 1.44 on (and moto from 5.2.5). Upgrading botocore system-wide would break an installed
# awscli (which pins botocore), so moto gets its own environment.
#
# Prints the moto_server path; the test finds it there by default, or via MOTO_SERVER.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
VENV="${MOTO_VENV:-$HOME/.cache/email-operator/moto-venv}"
REQUIREMENTS=("moto[server]>=5.2.5,<6" "boto3>=1.44" "botocore>=1.44")

suitable() {
    [ -x "$VENV/bin/moto_server" ] || return 1
    "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m
import flask, flask_cors, moto.server  # noqa: F401  (the [server] extra)
import botocore.session
http = botocore.session.get_session().get_service_model("sesv2").operation_model("ListEmailIdentities").http
assert http["requestUri"] == "/v2/email/list-identities", http
from moto.sesv2 import urls
assert any("list-identities" in p for p in urls.url_paths), "moto lacks list-identities"
print(f"moto {m.version('moto')}, botocore {m.version('botocore')}")
PY
}

if found="$(suitable)"; then
    echo "moto[server] already set up: $found"
else
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
    found="$(suitable)" || { echo "moto[server] installed in $VENV but not usable" >&2; exit 1; }
    echo "installed: $found"
fi
echo "moto_server: $VENV/bin/moto_server"
