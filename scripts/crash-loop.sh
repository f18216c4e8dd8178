#!/usr/bin/env bash
# kill -9 of FreeRADIUS in a loop while HOTP and TOTP logins go on, for as many
# rounds as asked (CI runs 12 within scripts/test.sh): tests/crash_loop.rs, with
# a line per round and the last lines kept in target/crash-loop.txt.
#
#   scripts/crash-loop.sh [ROUNDS]     default 200
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-200}
case $ROUNDS in
    '' | *[!0-9]*) echo "usage: $0 [ROUNDS]" >&2; exit 2 ;;
esac

scripts/setup.sh
echo "== building rlm_mfa.so (feature freeradius)"
cargo build --profile module --locked --lib --features freeradius --target-dir target/freeradius
mkdir -p target/module
cp target/freeradius/module/librlm_mfa.so target/module/rlm_mfa.so
# The test runs mfa-admin (crate mfa-admin) from beside its own binary: same profile.
echo "== building mfa-admin"
cargo build --release --locked -p mfa-admin

echo "== $ROUNDS rounds of kill -9"
export RLM_MFA_MODULE_DIR="$PWD/target/module" RLM_MFA_REQUIRE_INTEGRATION=1 RLM_MFA_CRASH_ROUNDS=$ROUNDS
started=$(date +%s)
cargo test --release --locked --test crash_loop -- --nocapture 2>&1 | tee target/crash-loop.txt | grep -E '^(round|crash loop)'
echo "== passed in $(( $(date +%s) - started )) s"
