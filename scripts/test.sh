#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh), builds the
# FreeRADIUS module, then runs the unit tests and the integration tests, which
# start real FreeRADIUS servers with the module loaded and talk RADIUS to them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== building rlm_mfa.so (feature freeradius)"
# A target directory of its own, so that the two feature sets do not rebuild each other.
cargo build --release --locked --lib --features freeradius --target-dir target/freeradius
mkdir -p target/module
cp target/freeradius/release/librlm_mfa.so target/module/rlm_mfa.so

echo "== unit and integration tests"
export RLM_MFA_MODULE_DIR="$PWD/target/module"
export RLM_MFA_REQUIRE_INTEGRATION=1
cargo test --release --locked "$@"

echo "== the demo (scripts/demo.sh --once) gets its Access-Accept"
DEMO_PORT=${DEMO_PORT:-18120} scripts/demo.sh --once > target/demo.out 2>&1 || {
    tail -n 40 target/demo.out
    exit 1
}
grep -q "Received Access-Accept" target/demo.out

if cargo clippy --version >/dev/null 2>&1; then
    echo "== clippy"
    cargo clippy --locked --all-targets -- -D warnings
    cargo clippy --locked --lib --features freeradius --target-dir target/freeradius -- -D warnings
fi
echo "== all tests passed"
