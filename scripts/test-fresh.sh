#!/usr/bin/env bash
# The README's quick start on a fresh Debian 13 (trixie), in a container: Debian's
# base image with nothing added but what the README asks for first (`apt install
# cargo`, and git for the clone), a clone of this repository's HEAD, then the
# README's two commands as they are: `scripts/demo.sh --once`, then `scripts/test.sh`
# (without Docker inside the container, its Docker steps say they were skipped).
# Too long for CI (it builds everything from nothing and runs every test); run it
# before a release, or after a change to the set-up scripts.
#
#   scripts/test-fresh.sh [trixie|bookworm]
#
# bookworm's own cargo (1.63) is older than the project's rust-version (1.85), and
# rustup's downloads are out of reach here, so a fresh Debian 12 is this kind of
# machine with Rust from rustup: the CI machine itself.
#
# /tmp in the container is a tmpfs, as in scripts/test-debian13.sh: the tests'
# journals need a file system that keeps an open file's identity across renames.
set -euo pipefail
cd "$(dirname "$0")/.."
release=${1:-trixie}
scripts/debian-image.sh "$release"
work=$(mktemp -d /var/tmp/rlm-mfa-fresh.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone -q . "$work/rlm_mfa"
mkdir -p target
echo "== a fresh Debian ($release): apt install cargo git; scripts/demo.sh --once; scripts/test.sh"
docker run --rm --tmpfs /tmp:rw,exec -v "$work/rlm_mfa:/home/rlm_mfa" -w /home/rlm_mfa "debian:$release" bash -c '
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cargo git ca-certificates > /dev/null
cargo --version
echo "== scripts/demo.sh --once"
DEMO_PORT=18121 scripts/demo.sh --once | tail -n 5
echo "== scripts/test.sh"
scripts/test.sh
' 2>&1 | tee target/test-fresh-"$release".txt
