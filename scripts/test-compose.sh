#!/usr/bin/env bash
# The compose example (compose/), as README.md's "Docker Compose" section uses it:
# two FreeRADIUS containers with rlm_mfa and the Redis they share on a private
# network; a user enrolled once (shared token file, an HOTP token, whose next
# code mfa-admin reads from the shared store); a login through each; a code used
# through one server refused through the other; one server stopped; a login
# through the other. Free ports in place of 11812 and 21812,
# and a compose project name of the test's own.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/debian-image.sh trixie
if docker compose version > /dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
free_port() { python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export MFA_PORT1 MFA_PORT2 COMPOSE_PROJECT_NAME=rlm-mfa-test-$$
MFA_PORT1=$(free_port)
MFA_PORT2=$(free_port)
cd compose
mkdir -p ../target
log=../target/compose-test.log
cleanup() { "${COMPOSE[@]}" down -v > /dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== ${COMPOSE[*]} build; run --rm -u root radius1 mfa-admin enroll alice; up -d (ports $MFA_PORT1 and $MFA_PORT2)"
"${COMPOSE[@]}" build > "$log" 2>&1 || { tail -n 40 "$log"; exit 1; }
"${COMPOSE[@]}" run -T --rm -u root radius1 mfa-admin enroll alice --type hotp --no-qr
"${COMPOSE[@]}" up -d >> "$log" 2>&1 || { tail -n 40 "$log"; exit 1; }
ready() {
    for _ in $(seq 100); do
        "${COMPOSE[@]}" logs "$1" > "../target/compose-$1.log" 2>&1
        grep -q "Ready to process requests" "../target/compose-$1.log" && return 0
        sleep 0.2
    done
    "${COMPOSE[@]}" logs "$1"
    return 1
}
login() { # SERVICE PORT
    local code
    code=$("${COMPOSE[@]}" exec -T "$1" mfa-admin code alice)
    echo "$code" > ../target/compose-code
    radtest alice "alice-password,$code" 127.0.0.1:"$2" 0 testing123 | tee "../target/compose-$1.out"
    grep -q "Received Access-Accept" "../target/compose-$1.out" || { "${COMPOSE[@]}" logs "$1"; return 1; }
}
ready radius1
ready radius2
echo "== a login through each server; a code used through one is refused through the other"
login radius1 "$MFA_PORT1"
used=$(cat ../target/compose-code)
radtest alice "alice-password,$used" 127.0.0.1:"$MFA_PORT2" 0 testing123 > ../target/compose-replay.out 2>&1 || true
grep -q "Received Access-Reject" ../target/compose-replay.out ||
    { cat ../target/compose-replay.out; echo "test-compose: the code used through radius1 was not refused by radius2" >&2; exit 1; }
login radius2 "$MFA_PORT2"
echo "== ${COMPOSE[*]} stop radius1; a login through radius2"
"${COMPOSE[@]}" stop radius1 >> "$log" 2>&1
if radtest alice "alice-password,000000" 127.0.0.1:"$MFA_PORT1" 0 testing123 > ../target/compose-stopped.out 2>&1; then
    echo "test-compose: radius1 still answers" >&2; exit 1
fi
login radius2 "$MFA_PORT2"
echo "test-compose: passed"
