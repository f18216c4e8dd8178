#!/usr/bin/env bash
# Installs a real privacyIDEA server (PyPI, version pinned in
# tests/privacyidea/constraints.txt) into a virtualenv, for the tests of the
# privacyidea backend (tests/privacyidea_server.rs and the tests built on it).
# Safe to run again: it does nothing when the venv already holds exactly the
# pinned set. The venv goes to .deps/privacyidea-venv unless PRIVACYIDEA_VENV says.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${PRIVACYIDEA_VENV:-.deps/privacyidea-venv}
CONSTRAINTS=tests/privacyidea/constraints.txt
VERSION=$(sed -n 's/^privacyIDEA==//p' "$CONSTRAINTS")
# The stamp names the exact pinned set, so a changed pin reinstalls.
WANT="privacyIDEA $VERSION $(sha256sum "$CONSTRAINTS" | cut -c1-16)"

if [ -f "$VENV/.rlm-mfa-installed" ] && [ "$(cat "$VENV/.rlm-mfa-installed")" = "$WANT" ] &&
   "$VENV/bin/python" -c 'import privacyidea' 2>/dev/null; then
    echo "privacyidea: $WANT already in $VENV"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# privacyIDEA 3.14 needs Python >= 3.10 (Debian 12 has 3.11); Debian splits venv
# support (ensurepip) into python3-venv.
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "privacyidea: apt-get install python3 python3-venv"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
    echo "privacyidea: python3 $(python3 -V 2>&1) is too old; privacyIDEA $VERSION needs 3.10 or newer" >&2
    exit 1
}

echo "privacyidea: creating $VENV ($(python3 -V 2>&1))"
rm -rf "$VENV"
python3 -m venv "$VENV"
echo "privacyidea: pip install privacyIDEA==$VERSION (dependencies pinned by $CONSTRAINTS)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -c "$CONSTRAINTS" "privacyIDEA==$VERSION"
"$VENV/bin/python" -c 'import privacyidea.app, cryptography' # fails loudly if the set is broken
echo "$WANT" > "$VENV/.rlm-mfa-installed"
echo "privacyidea: installed $WANT into $VENV"
