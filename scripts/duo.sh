#!/usr/bin/env bash
# Installs Duo's reference client (duo_client from PyPI, version pinned in
# tests/duo/constraints.txt) into a virtualenv, for the fake Duo API server of
# tests/duo.rs, which checks every request's signature with duo_client's own code.
# Safe to run again: it does nothing when the venv already holds the pinned version.
# The venv goes to .deps/duo-venv unless DUO_VENV says.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${DUO_VENV:-.deps/duo-venv}
CONSTRAINTS=tests/duo/constraints.txt
VERSION=$(sed -n 's/^duo_client==//p' "$CONSTRAINTS")
WANT="duo_client $VERSION $(sha256sum "$CONSTRAINTS" | cut -c1-16)"

if [ -f "$VENV/.rlm-mfa-installed" ] && [ "$(cat "$VENV/.rlm-mfa-installed")" = "$WANT" ] &&
   "$VENV/bin/python" -c 'import duo_client' 2>/dev/null; then
    echo "duo: $WANT already in $VENV"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "duo: apt-get install python3 python3-venv"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
fi

echo "duo: creating $VENV ($(python3 -V 2>&1))"
rm -rf "$VENV"
python3 -m venv "$VENV"
echo "duo: pip install duo_client==$VERSION"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -c "$CONSTRAINTS" "duo_client==$VERSION"
"$VENV/bin/python" -c 'import duo_client.client' # fails loudly if the install is broken
echo "$WANT" > "$VENV/.rlm-mfa-installed"
echo "duo: installed $WANT into $VENV"
