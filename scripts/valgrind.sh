#!/usr/bin/env bash
# FreeRADIUS with rlm_mfa under valgrind's memcheck, for a run of every flow
# (bench/soak.py, 1,200 logins by default: otp TOTP and HOTP, password+otp,
# password-then-otp, the menu with SMS through a fake gateway, push through a
# fake provider, the privacyIDEA backend against a fake /validate/check with a
# reply rule), then a clean stop (SIGTERM: FreeRADIUS stops its threads,
# detaches the modules and frees its configuration before it exits).
#
#   scripts/valgrind.sh [--module-dir DIR] [--logins N]
#
# Passes when memcheck reports no error (ERROR SUMMARY: 0; no invalid read,
# write or free, no use of uninitialised memory) and no definitely lost block
# has a frame in rlm_mfa. scripts/valgrind.supp suppresses, each with its reason,
# one leak of FreeRADIUS and four allocations of rlm_mfa (or of ureq in it) made
# once per process and counted as lost only because FreeRADIUS dlclose()s the
# module before it exits; the run fails if one of those four hides more than one
# block. The release build is used: its profile keeps line tables (debug = 1).
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
module_dir=${RLM_MFA_MODULE_DIR:-}
logins=1200
while [ $# -gt 0 ]; do
    case "$1" in
        --module-dir) module_dir=${2:?}; shift 2 ;;
        --logins) logins=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "valgrind.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for tool in valgrind freeradius radclient python3; do
    command -v "$tool" >/dev/null || { echo "valgrind.sh: $tool is missing" >&2; exit 1; }
done
if [ -z "$module_dir" ]; then
    echo "== building rlm_mfa.so (feature freeradius, release with line tables)"
    ( cd "$repo" &&
        cargo build --profile module --locked --lib --features freeradius --target-dir target/freeradius &&
        mkdir -p target/module &&
        cp target/freeradius/module/librlm_mfa.so target/module/rlm_mfa.so )
    module_dir="$repo/target/module"
fi

out="$repo/target/valgrind"
rm -rf "$out"
mkdir -p "$out/bin" "$out/module"
cp -p "$module_dir/rlm_mfa.so" "$out/module/rlm_mfa.so"
vlog="$out/memcheck.log"

# soak.py starts "freeradius"; this one, first on PATH, runs the real one under memcheck.
# --keep-debuginfo: FreeRADIUS dlclose()s modules on exit, before the leak report, which
# would leave rlm_mfa's frames as "???".
cat >"$out/bin/freeradius" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \\
    --track-origins=yes --keep-debuginfo=yes --num-callers=40 -v --child-silent-after-fork=yes \\
    --suppressions="$repo/scripts/valgrind.supp" --gen-suppressions=all \\
    --log-file="$vlog" $(command -v freeradius) "\$@"
EOF
chmod +x "$out/bin/freeradius"

echo "== every flow through FreeRADIUS under memcheck ($logins logins; slow: threads run one at a time)"
set +e
# Small cycles, little parallelism, long timeouts: memcheck runs the server 20-50 times slower.
PATH="$out/bin:$PATH" python3 -u "$repo/bench/soak.py" --module-dir "$out/module" --work "$out/work" \
    --logins "$logins" --cycle 200 --parallel 8 --timeout 60 --sample 10 --challenge-timeout 600 \
    --stop-grace 600 --no-rss-verdict --results "$out/soak.txt" | grep -v -e '^     ' -e '^   VmRSS every'
soak=${PIPESTATUS[0]}
set -e

echo "== memcheck's report ($vlog)"
grep -E "^==[0-9]+== +(ERROR SUMMARY|definitely lost:|indirectly lost:|possibly lost:|still reachable:|suppressed:)" "$vlog" | sed 's/^==[0-9]*== */   /' | awk '!seen[$0]++'
# Errors other than leaks: invalid read/write/free, uninitialised values, bad syscall args.
access=$(grep -cE "Invalid (read|write|free)|Mismatched free|uninitialised|Syscall param|overlap" "$vlog" || true)
# Loss records: from "N bytes in M blocks are <kind> lost" to the blank line after the stack.
python3 - "$vlog" >"$out/module-leaks.txt" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
lines = [re.sub(r"^==\d+== ?", "", l) for l in text.splitlines()]
total = {"definitely": [0, 0], "indirectly": [0, 0], "possibly": [0, 0]}
i = 0
while i < len(lines):
    m = re.match(r"([\d,]+) (?:\([\d,]+ direct, [\d,]+ indirect\) )?bytes in ([\d,]+) blocks are (definitely|indirectly|possibly) lost", lines[i])
    if not m:
        i += 1
        continue
    record = [lines[i]]
    i += 1
    while i < len(lines) and lines[i].strip():
        record.append(lines[i])
        i += 1
    if any("rlm_mfa" in l for l in record[1:]):
        kind = m.group(3)
        total[kind][0] += int(m.group(1).replace(",", ""))
        total[kind][1] += int(m.group(2).replace(",", ""))
        print("\n".join(record) + "\n")
print("with a frame in rlm_mfa: " + ", ".join(f"{k} lost {b} bytes in {n} blocks" for k, (b, n) in total.items()))
PY
module_line=$(tail -n 1 "$out/module-leaks.txt")
echo "   invalid accesses and uses of uninitialised memory: $access"
echo "   $module_line"
echo "   suppressions used (scripts/valgrind.supp):"
used=$(grep -E "^--[0-9]+-- used_suppression:" "$vlog" | sed -E 's/^--[0-9]+-- used_suppression: *//; s/ [^ ]*valgrind.supp:[0-9]+//' || true)
sed 's/^/     /' <<<"$used"
# A once-per-process allocation of the module hides one block; more means it is made per request.
many=$(grep -E "rlm_mfa-once-" <<<"$used" | grep -vE "in 1 blocks" || true)

errors=$(grep -oE "ERROR SUMMARY: [0-9]+" "$vlog" | tail -n 1 | grep -oE "[0-9]+$")
if [ "$soak" -ne 0 ] || [ "${errors:-1}" -ne 0 ] || [ "$access" -ne 0 ] || [ -n "$many" ] ||
    ! grep -q "definitely lost 0 bytes" <<<"$module_line"; then
    echo "== FAILED (soak exit $soak, ERROR SUMMARY ${errors:-none}${many:+, a once-only suppression hid more than one block}); details in $vlog and $out/module-leaks.txt"
    exit 1
fi
echo "== passed: no invalid access, no definite leak from rlm_mfa"
