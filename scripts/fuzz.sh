#!/usr/bin/env bash
# Fuzzes every parser of outside input (fuzz/fuzz_targets/, bodies in
# crates/mfa-core/src/fuzzing/)
# with cargo-fuzz (libFuzzer), one target after the other, each on one core.
#
#   scripts/fuzz.sh                      every target, 1,000,000 executions each
#   scripts/fuzz.sh 50000                every target, 50,000 executions each
#   scripts/fuzz.sh 1000000 token_file   one target
#   MERGE=1 scripts/fuzz.sh ...          also minimise what was found into fuzz/corpus/
#
# The committed corpus (fuzz/corpus/<target>/) is read, never grown: new inputs go to
# fuzz/corpus-full/<target>/ (not committed). A crash leaves its input in
# fuzz/artifacts/<target>/; after the fix, copy it to fuzz/regressions/<target>/,
# where `cargo test` replays it on stable (crates/mfa-core/src/fuzzing/replay.rs).
#
# Toolchain: the rustup `nightly` toolchain (cargo-fuzz needs -Z flags); without it,
# RUSTC_BOOTSTRAP=1 lets a stable toolchain take them.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-1000000}
shift || true

if cargo +nightly --version >/dev/null 2>&1; then
    cargo=(cargo +nightly)
else
    echo "== no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
# The journal target writes a scratch file per input: a tmpfs spares the disk.
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

# The longest input worth trying, per target: a bit more than the real thing needs.
declare -A max_len=(
    [user_name]=256 [password_split]=256 [state_unseal]=512 [state_tamper]=512
    [user_map]=4096 [push_answer]=4096 [gateway_answer]=4096
    [config]=2048 [template]=2048 [token_file]=8192 [journal_file]=8192
    [privacyidea_answer]=8192 [reply_rules]=4096 [transaction_state]=512
)
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=($(ls fuzz/fuzz_targets | sed 's/\.rs$//'))
fi

echo "== building the fuzz targets"
(cd fuzz && "${cargo[@]}" fuzz build -O >/dev/null)

summary=()
status=0
for t in "${targets[@]}"; do
    [ -n "${max_len[$t]:-}" ] || { echo "unknown target $t"; exit 2; }
    mkdir -p "fuzz/corpus-full/$t" "fuzz/corpus/$t" "fuzz/artifacts/$t"
    # Beside the target's artifacts, not among them: cargo-fuzz lists every file of
    # fuzz/artifacts/<target>/ as a failing input.
    log="fuzz/artifacts/$t.last-run.log"
    echo "== $t: $runs executions"
    # One process, one thread: libFuzzer's default without -jobs/-workers.
    if (cd fuzz && "${cargo[@]}" fuzz run -O "$t" "corpus-full/$t" "corpus/$t" -- \
            -runs="$runs" -max_len="${max_len[$t]}" -timeout=10 -print_final_stats=1) >"$log" 2>&1; then
        outcome="no crash, every check held"
    else
        # A panic or failed check, a bad access, a leak (LeakSanitizer runs at the end of
        # each input), a timeout or running out of memory: each leaves its input.
        outcome="FAILED: $(grep -m1 -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)' "$log" || echo see log) (input: $(grep -m1 -oE 'artifacts/[^ ]*(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+' "$log" || echo '?'))"
        status=1
    fi
    executed=$(grep -m1 -o 'number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    seconds=$(grep -m1 -o 'Done [0-9]* runs in [0-9]* second' "$log" | awk '{print $5}' || true)
    summary+=("$(printf '%-16s %10s executions %6s s  %s' "$t" "$executed" "${seconds:-?}" "$outcome")")
    if [ "${MERGE:-0}" = 1 ] && [ "$status" = 0 ]; then
        # The committed files stay; of the new ones, a small set that reaches the
        # edges they do not (edges, not hit counts: a corpus of a few hundred KB).
        rm -rf "fuzz/corpus-min/$t" && mkdir -p "fuzz/corpus-min/$t"
        cp "fuzz/corpus/$t/." "fuzz/corpus-min/$t/" -r
        (cd fuzz && "${cargo[@]}" fuzz run -O "$t" "corpus-min/$t" "corpus-full/$t" -- \
            -set_cover_merge=1 -use_counters=0 -max_len="${max_len[$t]}" >/dev/null 2>&1)
        rm -rf "fuzz/corpus/$t" && mv "fuzz/corpus-min/$t" "fuzz/corpus/$t"
    fi
done

echo "== results ($runs executions asked per target; logs in fuzz/artifacts/<target>.last-run.log)"
printf '%s\n' "${summary[@]}"
exit $status
