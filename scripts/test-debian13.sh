#!/usr/bin/env bash
# The integration tests against Debian 13's FreeRADIUS (3.2.7), in a container:
# the Dockerfile's build stage (Debian 13, its Rust 1.85, FreeRADIUS and
# radclient installed by scripts/setup.sh, the module and mfa-admin built there by
# debian/rules for the package) runs the project's integration tests (tests/) with
# cargo test, as scripts/test.sh does on this machine, against that module and
# mfa-admin: the build the package ships (before it is stripped). The privacyIDEA
# tests are left to this machine's run (their server's Python venv is this machine's).
#
# cargo works in the build stage's own /src/target, with its own CARGO_HOME, so the
# test build reuses what the package build compiled (moving either makes cargo
# compile everything again) and compiles only the tests and their dev-dependencies.
# /tmp is a tmpfs: the tests' journals need a file system that keeps an open file's
# identity across renames, which the container's own (fuse-overlayfs here) may not.
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
echo "== Debian 13: cargo test in the build stage, against FreeRADIUS $(docker run --rm rlm-mfa-build:trixie dpkg-query -W -f='${Version}' freeradius)"
mkdir -p "$ROOT/.deps/apt-archives/trixie/partial"
docker run --rm --tmpfs /tmp:rw,exec -v "$ROOT/.deps/apt-archives/trixie:/var/cache/apt/archives" \
    -e RLM_MFA_REQUIRE_INTEGRATION=1 -e RLM_MFA_PRIVACYIDEA_VENV=/nonexistent -e RLM_MFA_SMTP_VENV=/nonexistent -e RLM_MFA_DUO_VENV=/nonexistent -e RLM_MFA_MSCHAP_VENV=/nonexistent rlm-mfa-build:trixie bash -c '
set -euo pipefail
# What the tests use beside the server (kill, ps): not in a minimal Debian.
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends procps > /dev/null
cd /src
cargo --version
# The module as debian/rules built it; the tests find mfa-admin beside their own
# binaries (target/release), where debian/rules built it too.
mkdir -p /tmp/module && cp target/freeradius/module/librlm_mfa.so /tmp/module/rlm_mfa.so
export RLM_MFA_MODULE_DIR=/tmp/module RLM_MFA_TEST_DIR=/tmp/integration
# The root package: the integration tests (tests/), which start FreeRADIUS;
# the unit tests of the crates below do not depend on it and ran on this machine.
cargo test -p rlm_mfa --release --locked --no-fail-fast "$@"
' bash "$@" 2>&1 | tee target/test-debian13.txt
