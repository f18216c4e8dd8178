#!/usr/bin/env bash
# Installs Duo's reference client (duo_client from PyPI, version pinned in
# tests/duo/constraints.txt) into a virtualenv, for the fake Duo API server of
# tests/duo.rs, which checks every request's signature with duo_client's own code.
# Safe to run again (scripts/python-venv.sh). The venv goes to .deps/duo-venv
# unless DUO_VENV says.
set -euo pipefail
cd "$(dirname "$0")/.."
CONSTRAINTS=tests/duo/constraints.txt
VERSION=$(sed -n 's/^duo_client==//p' "$CONSTRAINTS")
exec scripts/python-venv.sh duo "${DUO_VENV:-.deps/duo-venv}" "$CONSTRAINTS" 'import duo_client.client' \
    -c "$CONSTRAINTS" "duo_client==$VERSION"
