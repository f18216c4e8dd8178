#!/usr/bin/env bash
# Makes the Python virtualenv of one test's PyPI packages, the same way for each
# (scripts/privacyidea.sh, duo.sh, smtp.sh): Debian's python3 and python3-venv,
# installed first if missing (and said), then the packages as pinned by a file of
# the repository. A stamp in the venv names that file's hash, so a changed pin
# reinstalls; when the venv already holds exactly that set, nothing is done.
#
#   scripts/python-venv.sh NAME VENV PIN_FILE IMPORT_CHECK [pip install arguments...]
#
#   PYTHON_MIN   the oldest Python the packages take (for example 3.10)
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 venv=$2 pins=$3 check=$4
shift 4
want="$name $(sha256sum "$pins" | cut -c1-16)"

if [ -f "$venv/.rlm-mfa-installed" ] && [ "$(cat "$venv/.rlm-mfa-installed")" = "$want" ] &&
   "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "$name: $want already in $venv"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# Debian splits venv support (ensurepip) into python3-venv.
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "$name: apt-get install python3 python3-venv"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
fi
if [ -n "${PYTHON_MIN:-}" ]; then
    python3 -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$PYTHON_MIN'.split('.'))))" || {
        echo "$name: python3 $(python3 -V 2>&1) is too old; $name needs $PYTHON_MIN or newer" >&2
        exit 1
    }
fi

echo "$name: creating $venv ($(python3 -V 2>&1))"
rm -rf "$venv"
python3 -m venv "$venv"
echo "$name: pip install $*"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
"$venv/bin/python" -c "$check" # fails loudly if the install is broken
echo "$want" > "$venv/.rlm-mfa-installed"
echo "$name: installed $want into $venv"
