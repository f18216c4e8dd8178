#!/usr/bin/env bash
# The core's unit tests (cargo test -p mfa-core --lib) under AddressSanitizer,
# then under LeakSanitizer alone, with the nightly toolchain.
#
#   scripts/asan.sh [address|leak]... [-- test filters and libtest options]
#
# Each sanitizer builds into a target directory of its own (target/asan,
# target/lsan). --target is given so that build scripts and proc macros (built
# for the host) stay uninstrumented: only the library and its tests are. Without
# rust-src the standard library is not rebuilt (-Zbuild-std) and so is not
# instrumented itself; accesses made by our code and the crates we use are.
# AddressSanitizer includes LeakSanitizer on x86_64 Linux (detect_leaks=1 is set
# explicitly); the second run checks leaks with LeakSanitizer's own runtime.
#
# Miri would also check the unsafe code's aliasing rules, but the nightly here
# has no miri component: see the README.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -euo pipefail
cd "$(dirname "$0")/.."

kinds=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    case "$1" in
        address|leak) kinds+=("$1"); shift ;;
        *) echo "asan.sh: unknown sanitizer $1 (address or leak)" >&2; exit 2 ;;
    esac
done
[ "${1:-}" = "--" ] && shift
[ ${#kinds[@]} -gt 0 ] || kinds=(address leak)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "asan.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')

status=0
for kind in "${kinds[@]}"; do
    dir=target/$([ "$kind" = address ] && echo asan || echo lsan)
    echo "== cargo +nightly test -p mfa-core --lib under -Zsanitizer=$kind (target $host, $dir)"
    # halt_on_error: the first bad access fails the test binary with its report.
    # abort_on_error=0 keeps the report readable instead of a core dump.
    if RUSTFLAGS="-Zsanitizer=$kind -Cdebuginfo=1 -Cforce-frame-pointers=yes" \
        ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1" \
        LSAN_OPTIONS="report_objects=1" \
        cargo +nightly test -p mfa-core --lib --locked --target "$host" --target-dir "$dir" -- "$@" 2>&1 | tee "$dir.log"; then
        echo "== $kind: clean ($(grep -E '^test result:' "$dir.log" | tail -n 1))"
    else
        echo "== $kind: FAILED (report in $dir.log)"
        status=1
    fi
done
exit "$status"
