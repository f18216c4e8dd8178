#!/usr/bin/env bash
# Online guessing against a real FreeRADIUS with rlm_mfa: builds the module as
# scripts/demo.sh does, then runs scripts/guess.py, which starts its own servers
# (under target/guess/) and fires thousands of wrong codes at them.
#
#   scripts/guess.sh                       the default runs (about a minute)
#   scripts/guess.sh --guesses 20000       more; see scripts/guess.py --help
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== building rlm_mfa.so"
cargo build --profile module --locked --lib --features freeradius --target-dir target/freeradius
mkdir -p target/module
cp target/freeradius/module/librlm_mfa.so target/module/rlm_mfa.so
exec python3 scripts/guess.py "$@"
