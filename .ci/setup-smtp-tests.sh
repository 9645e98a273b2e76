#!/usr/bin/env bash
# What the SMTP connection tests start: aiosmtpd (+ cryptography for test certificates,
# PyJWT to verify XOAUTH2 tokens) from PyPI, and oauth2-mock-server 8 (Node 20) from npm into
# ./.tools/node. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if "$PYTHON" -c "import aiosmtpd, cryptography, jwt" 2>/dev/null; then
  echo "aiosmtpd, cryptography, PyJWT already installed"
else
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "aiosmtpd>=1.4,<2" "cryptography>=42" "PyJWT[crypto]>=2.8,<3"
  echo "installed aiosmtpd $("$PYTHON" -c 'import aiosmtpd; print(aiosmtpd.__version__)')"
fi

if [ -f .tools/node/node_modules/oauth2-mock-server/package.json ]; then
  echo "oauth2-mock-server already installed"
else
  mkdir -p .tools/node
  (cd .tools/node && npm install --no-audit --no-fund --silent oauth2-mock-server@8)
  echo "installed oauth2-mock-server $(node -p "require('./.tools/node/node_modules/oauth2-mock-server/package.json').version")"
fi
