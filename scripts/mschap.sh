#!/usr/bin/env bash
# Installs passlib (PyPI, pinned in tests/mschap/requirements.txt) into a virtualenv,
# for the MS-CHAPv2 client of tests/mschap.rs (tests/mschap/client.py).
# Safe to run again (scripts/python-venv.sh). The venv goes to .deps/mschap-venv
# unless RLM_MFA_MSCHAP_VENV says.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUIREMENTS=tests/mschap/requirements.txt
exec scripts/python-venv.sh mschap "${RLM_MFA_MSCHAP_VENV:-.deps/mschap-venv}" "$REQUIREMENTS" \
    'from passlib.hash import nthash; from passlib.crypto.des import des_encrypt_block' --no-deps -r "$REQUIREMENTS"
