#!/usr/bin/env bash
# Installs aiosmtpd (PyPI, versions pinned in tests/smtp/requirements.txt) into a
# virtualenv, for the SMTP sink of tests/smtp.rs (tests/smtp/sink.py): a real SMTP
# server on loopback with AUTH and STARTTLS that keeps what it receives.
# Safe to run again: it does nothing when the venv already holds exactly the
# pinned set. The venv goes to .deps/smtp-venv unless RLM_MFA_SMTP_VENV says.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${RLM_MFA_SMTP_VENV:-.deps/smtp-venv}
REQUIREMENTS=tests/smtp/requirements.txt
# The stamp names the exact pinned set, so a changed pin reinstalls.
WANT="aiosmtpd $(sha256sum "$REQUIREMENTS" | cut -c1-16)"

if [ -f "$VENV/.rlm-mfa-installed" ] && [ "$(cat "$VENV/.rlm-mfa-installed")" = "$WANT" ] &&
   "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    echo "smtp: $WANT already in $VENV"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Debian splits venv support (ensurepip) into python3-venv.
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "smtp: apt-get install python3 python3-venv"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
fi

echo "smtp: creating $VENV ($(python3 -V 2>&1))"
rm -rf "$VENV"
python3 -m venv "$VENV"
echo "smtp: pip install -r $REQUIREMENTS"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$REQUIREMENTS"
"$VENV/bin/python" -c 'import aiosmtpd.controller, aiosmtpd.smtp' # fails loudly if the set is broken
echo "$WANT" > "$VENV/.rlm-mfa-installed"
echo "smtp: installed $WANT into $VENV"
