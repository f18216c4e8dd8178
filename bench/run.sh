#!/usr/bin/env bash
# rlm_mfa benchmark: throughput of PAP, rlm_totp and rlm_mfa through one
# FreeRADIUS configuration (part 1), the start-up time and memory of a
# 100,000-user token store (part 2), TOTP logins per second while 200
# pushes are pending (part 3), and the privacyIDEA backend against a fast fake
# privacyIDEA (part 4), and the CPU and latency the Redis state store adds to
# a login beside the local journal and rlm_totp (part 5), and the server's cost
# of one accepted login, path by path: instructions under callgrind, CPU time,
# system calls (part 6). See bench/README.md.
#
#   bench/run.sh [--module-dir DIR] [--out DIR] [--parts 1,2,3,4,5] [bench.py options...]
#
# Without --module-dir (or RLM_MFA_MODULE_DIR), the module is built from this
# repository into target/module/rlm_mfa.so when that is missing or older than
# the sources; likewise the fake privacyIDEA of part 4 (cargo's example
# fake_privacyidea) unless --fake-privacyidea names one. Part 5 runs Debian's
# redis-server from .deps/redis/bin (scripts/redis.sh unpacks it when it is
# missing; --redis-bin DIR for another). Everything runs on
# 127.0.0.1; scratch files go to bench/out/.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$bench_dir")
module_dir=${RLM_MFA_MODULE_DIR:-}
out="$bench_dir/out"
fake_pi=""
redis_bin=""
parts="1,2,3,4,5,6"
pass=()

usage() {
    cat <<EOF
usage: bench/run.sh [--module-dir DIR] [--out DIR] [options]

  --module-dir DIR   use DIR/rlm_mfa.so instead of building target/module/rlm_mfa.so
                     (also: RLM_MFA_MODULE_DIR=DIR)
  --fake-privacyidea FILE   use this fake privacyIDEA program in part 4 instead of
                     building target/release/examples/fake_privacyidea
  --out DIR          scratch and results directory (default: bench/out)

Options passed on to bench/bench.py (defaults in brackets):
  --users N          requests, one per distinct user, per path per round [12000]
  --rounds N         rounds of the three paths [5]
  --warmup N         unmeasured requests per path before the rounds [2000]
  --chunk N          packets per radclient run [2000]
  --clients N        radclient processes running at once [1]
  --parallel N       radclient -p [64]
  --store-users N    users in the big token store of part 2 [100000]
  --store-runs N     start-ups per store size in part 2 [3]
  --push-pending N   push logins sent at once in part 3 [200]
  --push-totp N      TOTP logins per measure in part 3 [10000]
  --push-rounds N    rounds of part 3 [3]
  --push-settle S    seconds from the last push created to the measure in part 3 [1]
  --pi-users N       requests per path per round in part 4 [10000]
  --pi-rounds N      rounds of part 4 [5]
  --pi-latency N     sequential requests per path in part 4 [3000]
  --pi-latency-warmup N   unmeasured sequential requests per path first [200]
  --redis-bin DIR    redis-server's directory for part 5 [.deps/redis/bin]
  --redis-users N    logins per path per round in part 5 [6000]
  --redis-rounds N   rounds of part 5 [5]
  --redis-latency N  sequential logins per path in part 5 [2000]
  --redis-latency-warmup N   unmeasured sequential logins per path first [200]
  --callgrind N      logins per path counted under valgrind's callgrind in part 5,
                     0 to leave it out [200]
  --cost-logins N    logins per path counted under callgrind in part 6, 0: none [300]
  --cost-users N     logins per path per round of part 6's CPU measure [4000]
  --cost-rounds N    rounds of part 6's CPU measure [11]
  --cost-strace N    logins per path counted by strace -c in part 6, 0: none [1000]
  --cost-bare-trips N   round trips of a bare Redis client per round of part 6, the
                     floor beside what Redis adds, 0: none [2000]
  --cost-memory N    users logging in once each for part 6's memory measure, 0: none [100000]
  --redis-beside-server   parts 5 and 6: redis-server on the server's CPU, not the load's
  --no-pin           parts 5 and 6: pin nothing (by default the server runs on one
                     CPU, radclient, redis-server and the script on another)
  --parts LIST       parts to run: 1 throughput, 2 token store, 3 pushes pending,
                     4 privacyIDEA backend, 5 Redis state store, 6 cost per login
                     [1,2,3,4,5,6];
                     e.g. --parts 3 or --parts 1,4
  --skip-throughput, --skip-store   leave out part 1 or part 2
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --module-dir) module_dir=${2:?--module-dir needs a directory}; shift 2 ;;
        --module-dir=*) module_dir=${1#*=}; shift ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --fake-privacyidea) fake_pi=${2:?--fake-privacyidea needs a file}; shift 2 ;;
        --fake-privacyidea=*) fake_pi=${1#*=}; shift ;;
        # Read here (part 4 needs a build) and passed on.
        --parts) parts=${2:?--parts needs a list}; pass+=("$1" "$2"); shift 2 ;;
        --parts=*) parts=${1#*=}; pass+=("$1"); shift ;;
        --redis-bin) redis_bin=${2:?--redis-bin needs a directory}; shift 2 ;;
        --redis-bin=*) redis_bin=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) pass+=("$1"); shift ;;
    esac
done

for tool in freeradius radclient python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "run.sh: $tool is missing (scripts/setup.sh installs freeradius and freeradius-utils)" >&2
        exit 1
    fi
done

if [ -z "$module_dir" ]; then
    module_dir="$repo/target/module"
    so="$module_dir/rlm_mfa.so"
    stale=""
    if [ -f "$so" ]; then
        stale=$(cd "$repo" && find src crates/mfa-core include build.rs Cargo.toml Cargo.lock -newer "$so" -print -quit 2>/dev/null || true)
    fi
    if [ ! -f "$so" ] || [ -n "$stale" ]; then
        echo "== building rlm_mfa.so (${stale:+$stale changed since the last build; }feature freeradius, profile module)"
        # Chained with &&: set -e does not apply on the left of ||.
        ( cd "$repo" &&
            scripts/setup.sh &&
            cargo build --profile module --locked --lib --features freeradius --target-dir target/freeradius &&
            mkdir -p target/module &&
            cp target/freeradius/module/librlm_mfa.so target/module/rlm_mfa.so ) || {
            echo "run.sh: building the module failed; fix the build or pass --module-dir DIR" >&2
            exit 1
        }
    fi
fi
module_dir=$(cd "$module_dir" && pwd)
if [ ! -f "$module_dir/rlm_mfa.so" ]; then
    echo "run.sh: no rlm_mfa.so in $module_dir" >&2
    exit 1
fi

# Part 4's fake privacyIDEA: the test suite's fake (tests/common/fake_privacyidea.rs)
# as a program. It uses the standard library only, but cargo builds the crate's
# library with it, in the default target directory.
if [[ ",${parts// /,}," == *,4,* ]]; then
    if [ -z "$fake_pi" ]; then
        fake_pi="$repo/target/release/examples/fake_privacyidea"
        stale=""
        if [ -x "$fake_pi" ]; then
            stale=$(cd "$repo" && find examples/fake_privacyidea.rs tests/common/fake_privacyidea.rs \
                tests/common/fake_http.rs -newer "$fake_pi" -print -quit 2>/dev/null || true)
        fi
        if [ ! -x "$fake_pi" ] || [ -n "$stale" ]; then
            echo "== building the fake privacyIDEA (cargo build --release --example fake_privacyidea)"
            ( cd "$repo" && cargo build --release --locked --example fake_privacyidea ) || {
                echo "run.sh: building the fake privacyIDEA failed; pass --fake-privacyidea FILE or leave out part 4" >&2
                exit 1
            }
        fi
    fi
    if [ ! -x "$fake_pi" ]; then
        echo "run.sh: $fake_pi is not an executable" >&2
        exit 1
    fi
    fake_pi=$(cd "$(dirname "$fake_pi")" && pwd)/$(basename "$fake_pi")
    pass+=(--fake-privacyidea "$fake_pi")
fi

# Part 5's Redis: Debian's redis-server, unpacked into .deps/redis by scripts/redis.sh.
if [[ ",${parts// /,}," == *,5,* || ",${parts// /,}," == *,6,* ]]; then
    if [ -z "$redis_bin" ]; then
        redis_bin="$repo/.deps/redis/bin"
        if [ ! -x "$redis_bin/redis-server" ]; then
            echo "== unpacking Debian's redis-server (scripts/redis.sh)"
            ( cd "$repo" && scripts/redis.sh ) || {
                echo "run.sh: scripts/redis.sh failed; pass --redis-bin DIR or leave out part 5" >&2
                exit 1
            }
        fi
    fi
    if [ ! -x "$redis_bin/redis-server" ]; then
        echo "run.sh: no redis-server in $redis_bin" >&2
        exit 1
    fi
    pass+=(--redis-bin "$(cd "$redis_bin" && pwd)")
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/work"
rm -rf "$work"
mkdir -p "$work"

# The servers load a private copy: a rebuild that rewrites target/module/rlm_mfa.so in
# place while a server has it loaded would crash that server.
mkdir -p "$work/module"
cp -p "$module_dir/rlm_mfa.so" "$work/module/rlm_mfa.so"
echo "== module: $module_dir/rlm_mfa.so, copied to $work/module for this run"
module_dir="$work/module"

# bench.py stops its servers itself; this is the safety net for when it cannot
# (killed, crashed). It kills only the processes bench.py recorded, and only if
# they still are freeradius over this run's directories (or part 5's redis-server,
# which renames itself but works in its directory).
cleanup() {
    local pid dir kind
    [ -f "$work/pids" ] || return 0
    while read -r pid dir kind; do
        if { [ "$kind" = redis ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir" ]; } ||
            { [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-d $dir"; }; then
            kill "$pid" 2>/dev/null || true
            sleep 0.2
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        fi
    done <"$work/pids"
}
trap cleanup EXIT

echo "== rlm_mfa benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC'); results also in $out/results.txt"
# In the background, so that a signal to this script is handled at once: it is
# passed on to bench.py, which stops its servers and radclients.
python3 -u "$bench_dir/bench.py" --module-dir "$module_dir" --work "$work" \
    --results "$out/results.txt" "${pass[@]}" &
py=$!
trap 'kill -TERM "$py" 2>/dev/null; wait "$py"; exit 130' INT TERM HUP
set +e
wait "$py"
status=$?
set -e
exit "$status"
