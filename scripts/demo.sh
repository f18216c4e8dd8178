#!/usr/bin/env bash
# The demo: installs what is missing, builds rlm_mfa, starts FreeRADIUS with the
# module (the shipped mods-available/mfa and sites-available/mfa, as they are)
# on 127.0.0.1:18120, enrolls the user "demo" (password "demo-password"),
# shows the QR code for an authenticator app, and logs in once with radtest.
#
#   scripts/demo.sh          keeps the server running until Ctrl-C
#   scripts/demo.sh --once   stops after the radtest (used by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${DEMO_PORT:-18120}
# Debian's own FreeRADIUS, which its package starts on a machine with systemd, listens
# on 127.0.0.1:18120 (its inner-tunnel): without DEMO_PORT the demo then takes the next
# port that is free.
TRIES=1
[ -z "${DEMO_PORT:-}" ] && TRIES=10
ONCE=0
[ "${1:-}" = "--once" ] && ONCE=1

scripts/setup.sh
echo "== building rlm_mfa.so and mfa-admin"
cargo build --profile module --locked --lib --features freeradius --target-dir target/freeradius
mkdir -p target/module
cp target/freeradius/module/librlm_mfa.so target/module/rlm_mfa.so
cargo build --release --locked -p mfa-admin
ADMIN=$ROOT/target/release/mfa-admin

DIR=$ROOT/target/demo
rm -rf "$DIR"
mkdir -p "$DIR"/{mods-enabled,sites-enabled,mods-config/mfa,mods-config/files,log,run,var,db,acct}
sed -e "s|@DIR@|$DIR|g" -e "s|@MODULE_DIR@|$ROOT/target/module|g" tests/radiusd.conf.in > "$DIR/radiusd.conf"
cp freeradius-conf/mods-available/mfa "$DIR/mods-enabled/mfa"
printf 'pap {\n\tnormalise = yes\n}\n' > "$DIR/mods-enabled/pap"
printf 'files {\n\tmoddir = ${modconfdir}/${.:instance}\n\tfilename = ${moddir}/authorize\n}\n' > "$DIR/mods-enabled/files"
printf 'always ok {\n\trcode = ok\n}\n' > "$DIR/mods-enabled/always"
# The first factor: the users file.
printf 'demo\tCleartext-Password := "demo-password"\n' > "$DIR/mods-config/files/authorize"

export MFA_TOKENS=$DIR/mods-config/mfa/tokens.json
# Where the shipped mods-available/mfa keeps it: ${localstatedir}/lib/freeradius/mfa.
export MFA_STATE=$DIR/var/lib/freeradius/mfa/state.jsonl
echo
echo "== enrolling the user \"demo\": scan this with an authenticator app"
"$ADMIN" enroll demo --issuer "rlm_mfa demo"

# Starts the server on $PORT; false when the port is taken.
start_server() {
    sed -e "s/ipaddr = \*/ipaddr = 127.0.0.1/" -e "s/port = 1812/port = $PORT/" \
        freeradius-conf/sites-available/mfa > "$DIR/sites-enabled/mfa"
    echo "== starting FreeRADIUS on 127.0.0.1:$PORT (log: $DIR/log/debug.log)"
    freeradius -f -xx -l stdout -d "$DIR" > "$DIR/log/debug.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true' EXIT
    for _ in $(seq 100); do
        grep -q "Ready to process requests" "$DIR/log/debug.log" && return 0
        if ! kill -0 $SERVER 2>/dev/null; then
            grep -q "Address already in use" "$DIR/log/debug.log" && return 1
            tail -n 30 "$DIR/log/debug.log"
            exit 1
        fi
        sleep 0.1
    done
}
until start_server; do
    TRIES=$((TRIES - 1))
    [ $TRIES -gt 0 ] || { echo "demo: port $PORT is in use; set DEMO_PORT to a free port" >&2; exit 1; }
    echo "== port $PORT is in use (Debian's own FreeRADIUS listens on 18120 for its inner-tunnel); trying $((PORT + 1))"
    PORT=$((PORT + 1))
done

echo
echo "== logging in: password, a comma, then the current code"
CODE=$("$ADMIN" code demo)
echo "\$ radtest demo \"demo-password,$CODE\" 127.0.0.1:$PORT 0 testing123"
radtest demo "demo-password,$CODE" "127.0.0.1:$PORT" 0 testing123 | tee "$DIR/radtest.out"
grep -q "Received Access-Accept" "$DIR/radtest.out"
echo
echo "Access-Accept.  The same code again is refused (replay protection):"
radtest demo "demo-password,$CODE" "127.0.0.1:$PORT" 0 testing123 > "$DIR/replay.out" || true
grep -E "Received|Reply-Message" "$DIR/replay.out" || true
grep -q "Received Access-Reject" "$DIR/replay.out" || { echo "demo: the replayed code was not refused" >&2; exit 1; }

[ $ONCE = 1 ] && exit 0
cat <<EOT

The server keeps running.  Log in with the code from your app:

  radtest demo "demo-password,CODE" 127.0.0.1:$PORT 0 testing123

or let the admin command show the current code:

  radtest demo "demo-password,\$(MFA_TOKENS=$MFA_TOKENS MFA_STATE=$MFA_STATE $ADMIN code demo)" 127.0.0.1:$PORT 0 testing123

Debug log: $DIR/log/debug.log    Stop: Ctrl-C
EOT
wait $SERVER
