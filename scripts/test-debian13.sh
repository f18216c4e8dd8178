#!/usr/bin/env bash
# The integration tests against Debian 13's FreeRADIUS (3.2.7), in a container:
# the Dockerfile's build stage (Debian 13, its Rust 1.85, FreeRADIUS and
# radclient installed by scripts/setup.sh, the module built there by
# scripts/package.sh) runs the project's integration tests (tests/) with cargo
# test, as scripts/test.sh does on this machine, against the module built there. The privacyIDEA tests
# are left to this machine's run (their server's Python venv is this machine's).
#
# /tmp is a tmpfs: the tests' journals need a file system that keeps an open file's
# identity across renames, which the container's own (fuse-overlayfs here) may not.
# cargo's target directory and registry are kept in .deps/debian13-cargo, seeded
# from the build stage the first time, so a second run compiles only what changed.
#
#   scripts/test-debian13.sh [cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/debian-image.sh trixie
echo "== Debian 13: the Dockerfile's build stage (docker build --target build -t rlm-mfa-build:trixie .)"
mkdir -p target
docker build -q --target build -t rlm-mfa-build:trixie . > target/build-stage.log 2>&1 ||
    { tail -n 60 target/build-stage.log; exit 1; }
cache=$ROOT/.deps/debian13-cargo
mkdir -p "$cache"
echo "== Debian 13: cargo test in the build stage, against FreeRADIUS $(docker run --rm rlm-mfa-build:trixie dpkg-query -W -f='${Version}' freeradius)"
mkdir -p "$ROOT/.deps/apt-archives/trixie/partial"
docker run --rm --tmpfs /tmp:rw,exec -v "$cache:/cache" -v "$ROOT/.deps/apt-archives/trixie:/var/cache/apt/archives" -e CARGO_TARGET_DIR=/cache/target -e CARGO_HOME=/cache/cargo \
    -e RLM_MFA_REQUIRE_INTEGRATION=1 -e RLM_MFA_PRIVACYIDEA_VENV=/nonexistent -e RLM_MFA_SMTP_VENV=/nonexistent -e RLM_MFA_DUO_VENV=/nonexistent -e RLM_MFA_MSCHAP_VENV=/nonexistent rlm-mfa-build:trixie bash -c '
set -euo pipefail
# What the tests use beside the server (kill, ps): not in a minimal Debian.
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends procps > /dev/null
# The first time: what the build stage built and downloaded.
[ -d /cache/target ] || cp -a /src/target /cache/target
[ -d /cache/cargo ] || cp -a "$HOME/.cargo" /cache/cargo
cargo --version
# The module as scripts/test.sh builds it (shared with the package build: nothing to do).
cargo build --profile module --locked --lib --features freeradius --target-dir /cache/target/freeradius
mkdir -p /cache/module && cp /cache/target/freeradius/module/librlm_mfa.so /cache/module/rlm_mfa.so
cargo build --release --locked -p mfa-admin
export RLM_MFA_MODULE_DIR=/cache/module RLM_MFA_TEST_DIR=/tmp/integration
# The root package: the integration tests (tests/), which start FreeRADIUS;
# the unit tests of the crates below do not depend on it and ran on this machine.
cargo test -p rlm_mfa --release --locked --no-fail-fast "$@"
' bash "$@" 2>&1 | tee target/test-debian13.txt
