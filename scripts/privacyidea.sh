#!/usr/bin/env bash
# Installs a real privacyIDEA server (PyPI, version pinned in
# tests/privacyidea/constraints.txt) into a virtualenv, for the tests of the
# privacyidea backend (tests/privacyidea_server.rs and the tests built on it).
# Safe to run again (scripts/python-venv.sh). The venv goes to
# .deps/privacyidea-venv unless PRIVACYIDEA_VENV says.
set -euo pipefail
cd "$(dirname "$0")/.."
CONSTRAINTS=tests/privacyidea/constraints.txt
VERSION=$(sed -n 's/^privacyIDEA==//p' "$CONSTRAINTS")
# privacyIDEA 3.14 needs Python 3.10 or newer (Debian 12 has 3.11, Debian 13 3.13).
PYTHON_MIN=3.10 exec scripts/python-venv.sh privacyidea "${PRIVACYIDEA_VENV:-.deps/privacyidea-venv}" \
    "$CONSTRAINTS" 'import privacyidea.app, cryptography' -c "$CONSTRAINTS" "privacyIDEA==$VERSION"
