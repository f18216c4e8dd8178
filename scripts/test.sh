#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh), builds the
# FreeRADIUS module, then runs the unit tests and the integration tests, which
# start real FreeRADIUS servers with the module loaded and talk RADIUS to them.
# Then, with Docker: the Debian 12 and 13 packages (scripts/test-packages.sh), the
# integration tests against Debian 13's FreeRADIUS in a container
# (scripts/test-debian13.sh), the container image (scripts/test-image.sh) and the
# compose example (scripts/test-compose.sh).
set -euo pipefail
# pipefail: a failing cargo test fails the script even through tee.
cd "$(dirname "$0")/.."

scripts/setup.sh
# A real privacyIDEA for tests/privacyidea.rs (PyPI, into .deps/privacyidea-venv).
scripts/privacyidea.sh
# Duo's reference client for the fake Duo API of tests/duo.rs (PyPI, into .deps/duo-venv).
scripts/duo.sh
# A real Redis and its Sentinel for tests/redis.rs (Debian's, unpacked into .deps/redis).
scripts/redis.sh
# A real SMTP server on loopback (aiosmtpd, PyPI, into .deps/smtp-venv) for tests/smtp.rs.
scripts/smtp.sh
# passlib (PyPI, into .deps/mschap-venv): the MS-CHAPv2 client of tests/mschap.rs.
scripts/mschap.sh

echo "== every locked dependency builds with the workspace's rust-version (Debian 13's Rust)"
cargo metadata --locked --format-version 1 | python3 -c '
import json, sys
meta = json.load(sys.stdin)
version = lambda v: tuple(int(x) for x in v.split("."))
ours = min(version(p["rust_version"]) for p in meta["packages"] if p["source"] is None)
newer = ["%s %s needs Rust %s" % (p["name"], p["version"], p["rust_version"]) for p in meta["packages"]
         if p.get("rust_version") and version(p["rust_version"]) > ours]
if newer:
    sys.exit("Cargo.lock holds packages newer than rust-version (see Cargo.toml): " + "; ".join(newer))
'

echo "== building rlm_mfa.so (feature freeradius)"
# A target directory of its own, so that the two feature sets do not rebuild each other.
cargo build --profile module --locked --lib --features freeradius --target-dir target/freeradius
mkdir -p target/module
cp target/freeradius/module/librlm_mfa.so target/module/rlm_mfa.so

echo "== building mfa-admin (the integration tests run it)"
cargo build --release --locked -p mfa-admin

echo "== unit and integration tests"
export RLM_MFA_MODULE_DIR="$PWD/target/module"
export RLM_MFA_REQUIRE_INTEGRATION=1
export RLM_MFA_REQUIRE_PRIVACYIDEA=1
export RLM_MFA_REQUIRE_DUO=1
export RLM_MFA_REQUIRE_REDIS=1
export RLM_MFA_REQUIRE_SMTP=1
export RLM_MFA_REQUIRE_MSCHAP=1
cargo_status=0
cargo test --workspace --release --locked --no-fail-fast "$@" 2>&1 | tee target/test-output.txt || cargo_status=$?
# The counts of every test binary, in one closing line.
count() { awk -v what="$1" '/^test result:/ { for (i = 2; i <= NF; i++) if ($i ~ "^" what) n += $(i - 1) } END { print n + 0 }' "${2:-target/test-output.txt}"; }
passed=$(count passed)
failed=$(count failed)
# Every test binary runs (--no-fail-fast); a build error or a binary that crashed
# counts as one failure at least, and the closing line still says so.
if [ "$cargo_status" != 0 ] && [ "$failed" = 0 ]; then
    failed=1
fi

echo "== the demo (scripts/demo.sh --once): its Access-Accept, then the replay refused"
if DEMO_PORT=${DEMO_PORT:-18120} scripts/demo.sh --once > target/demo.out 2>&1 &&
    grep -q "Received Access-Accept" target/demo.out; then
    passed=$((passed + 1))
else
    tail -n 40 target/demo.out
    failed=$((failed + 1))
fi

if cargo fmt --version >/dev/null 2>&1; then
    echo "== cargo fmt --check (rustfmt.toml)"
    cargo fmt --all -- --check
    (cd fuzz && cargo fmt -- --check)
fi
if cargo clippy --version >/dev/null 2>&1; then
    echo "== clippy"
    cargo clippy --locked --workspace --all-targets -- -D warnings
    cargo clippy --locked --lib --features freeradius --target-dir target/freeradius -- -D warnings
fi
# Debian 12 and 13 packages, the integration tests against Debian 13's FreeRADIUS,
# the container image and the compose example, in Docker containers. Each script
# counts as one test; the Debian 13 run's cargo tests count one by one.
rm -f target/test-debian13.txt
docker_tests=(scripts/test-packages.sh scripts/test-debian13.sh scripts/test-image.sh scripts/test-compose.sh)
if docker info > /dev/null 2>&1; then
    for script in "${docker_tests[@]}"; do
        echo "== $script"
        start=$SECONDS
        if "$script"; then
            passed=$((passed + 1))
            echo "== $script: passed in $((SECONDS - start)) s"
        else
            failed=$((failed + 1))
            echo "== $script: FAILED after $((SECONDS - start)) s"
        fi
    done
    # A rebuild moves the tags (rlm-mfa, rlm-mfa-build:trixie, rlm-mfa-store) to the
    # new images: remove the old ones it left untagged, ours only (label rlm-mfa.image).
    docker image prune -f --filter label=rlm-mfa.image > /dev/null || true
    if [ -f target/test-debian13.txt ]; then
        passed=$((passed + $(count passed target/test-debian13.txt)))
        failed=$((failed + $(count failed target/test-debian13.txt)))
    fi
elif [ "${CI:-}" = true ]; then
    echo "== Docker is not running: ${docker_tests[*]} cannot run" >&2
    failed=$((failed + ${#docker_tests[@]}))
else
    echo "== skipped, Docker is not running here: ${docker_tests[*]}"
fi

if [ "$failed" != 0 ]; then
    echo "tests: ${passed} passed, ${failed} failed"
    exit 1
fi
echo "== all tests passed"
echo "tests: ${passed} passed, ${failed} failed"
