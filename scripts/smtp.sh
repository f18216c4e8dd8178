#!/usr/bin/env bash
# Installs aiosmtpd (PyPI, versions pinned in tests/smtp/requirements.txt) into a
# virtualenv, for the SMTP sink of tests/smtp.rs (tests/smtp/sink.py): a real SMTP
# server on loopback with AUTH and STARTTLS that keeps what it receives.
# Safe to run again (scripts/python-venv.sh). The venv goes to .deps/smtp-venv
# unless RLM_MFA_SMTP_VENV says.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUIREMENTS=tests/smtp/requirements.txt
exec scripts/python-venv.sh smtp "${RLM_MFA_SMTP_VENV:-.deps/smtp-venv}" "$REQUIREMENTS" \
    'import aiosmtpd.controller, aiosmtpd.smtp' --no-deps -r "$REQUIREMENTS"
