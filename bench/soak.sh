#!/usr/bin/env bash
# rlm_mfa soak run: one FreeRADIUS (-f, no debug) with every flow configured,
# 300,000 logins through all of them at once with radclient, zero lost, every
# reply the expected one, and the server's resident memory flat after warm-up.
#
#   bench/soak.sh [--module-dir DIR] [--out DIR] [soak.py options...]
#
# Options passed on to bench/soak.py (defaults in brackets):
#   --logins N             logins in all, at least [300000]
#   --cycle N              logins per cycle, spread over the flows [6000]
#   --parallel N           radclient -p, per radclient [32]
#   --timeout S            radclient -t: seconds before the second of two tries [15]
#   --sample S             seconds between VmRSS samples [5]
#   --challenge-timeout S  challenge_timeout of the instances [30]
#   --warm F               fraction of the run counted as warm-up [0.2]
#   --rss-threshold MIB    VmRSS growth allowed after warm-up [4]
#   --heap-check           also rest after warm-up and at the end and read the heap's
#                          bytes in use (gdb calls malloc_stats() in the server)
#   --heaptrack            the same rests and reading, by heaptrack's preload library
#                          (apt install heaptrack) where gdb cannot call into a process
#   --heap-threshold MIB   growth of the heap in use at rest allowed [1]
#
# Without --module-dir (or RLM_MFA_MODULE_DIR), the module is built from this
# repository into target/module/rlm_mfa.so when missing or older than the
# sources. Exit status 0: the run met every check; 1: it did not.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$bench_dir")
module_dir=${RLM_MFA_MODULE_DIR:-}
out="$bench_dir/out/soak"
pass=()

while [ $# -gt 0 ]; do
    case "$1" in
        --module-dir) module_dir=${2:?--module-dir needs a directory}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) pass+=("$1"); shift ;;
    esac
done

for tool in freeradius radclient python3; do
    command -v "$tool" >/dev/null || { echo "soak.sh: $tool is missing (scripts/setup.sh)" >&2; exit 1; }
done

if [ -z "$module_dir" ]; then
    module_dir="$repo/target/module"
    so="$module_dir/rlm_mfa.so"
    stale=""
    [ -f "$so" ] && stale=$(cd "$repo" && find src crates/mfa-core include build.rs Cargo.toml Cargo.lock -newer "$so" -print -quit 2>/dev/null || true)
    if [ ! -f "$so" ] || [ -n "$stale" ]; then
        echo "== building rlm_mfa.so (feature freeradius, profile module)"
        ( cd "$repo" &&
            cargo build --profile module --locked --lib --features freeradius --target-dir target/freeradius &&
            mkdir -p target/module &&
            cp target/freeradius/module/librlm_mfa.so target/module/rlm_mfa.so ) || {
            echo "soak.sh: building the module failed; fix the build or pass --module-dir DIR" >&2
            exit 1
        }
    fi
fi
[ -f "$module_dir/rlm_mfa.so" ] || { echo "soak.sh: no rlm_mfa.so in $module_dir" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/work"
rm -rf "$work"
mkdir -p "$work/module"
# A private copy: a rebuild rewriting the library in place would crash the server.
cp -p "$module_dir/rlm_mfa.so" "$work/module/rlm_mfa.so"

# soak.py stops its server itself; this is the safety net if it cannot. It kills only
# the processes soak.py recorded, and only while they still are freeradius over $work.
cleanup() {
    local pid dir
    [ -f "$work/pids" ] || return 0
    while read -r pid dir; do
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-d $dir"; then
            kill "$pid" 2>/dev/null || true
        fi
    done <"$work/pids"
}
trap cleanup EXIT

python3 -u "$bench_dir/soak.py" --module-dir "$work/module" --work "$work" \
    --results "$out/results.txt" "${pass[@]}" &
py=$!
trap 'kill -TERM "$py" 2>/dev/null; wait "$py"; exit 130' INT TERM HUP
set +e
wait "$py"
status=$?
set -e
echo "(report also in $out/results.txt)"
exit "$status"
