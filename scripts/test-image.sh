#!/usr/bin/env bash
# The container image, tried as README.md's "Container" quick start says, command
# for command: docker build, docker run with the port published and the
# configuration, token file and state in volumes, mfa-admin enroll, radtest from
# this machine, Access-Accept. Only the published port, the container's name and
# the volumes' names differ (a free port; names of the test's own), and the run
# happens in target/image-test. Then: the server runs as freerad, logs on stdout,
# turns healthy, and the image holds no compiler.
# Where debian:trixie is missing, scripts/debian-image.sh makes it (and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/debian-image.sh trixie
PORT=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
NAME=rlm-mfa-test-$$
cleanup() {
    docker rm -f "$NAME" > /dev/null 2>&1 || true
    docker volume rm "$NAME-tokens" "$NAME-state" > /dev/null 2>&1 || true
}
trap cleanup EXIT
rm -rf target/image-test && mkdir -p target/image-test
cd target/image-test

echo "== docker build -t rlm-mfa ."
(cd "$ROOT" && docker build -t rlm-mfa .) > build.log 2>&1 || { tail -n 60 build.log; exit 1; }
echo "== the README's quick start (port $PORT in place of 1812, container $NAME)"
printf 'client docker {\n\tipaddr = 172.16.0.0/12\n\tsecret = testing123\n}\n' > clients.conf
printf 'alice\tCleartext-Password := "alice-password"\n' > users
docker run --rm -u root -v "$NAME-tokens:/etc/freeradius/3.0/mods-config/mfa" rlm-mfa mfa-admin enroll alice
docker run -d --name "$NAME" -p "$PORT:1812/udp" \
    -v "$PWD/clients.conf:/etc/freeradius/3.0/clients.d/local.conf:ro" \
    -v "$PWD/users:/etc/freeradius/3.0/mods-config/files/authorize:ro" \
    -v "$NAME-tokens:/etc/freeradius/3.0/mods-config/mfa" \
    -v "$NAME-state:/var/lib/freeradius/mfa" rlm-mfa
for _ in $(seq 100); do
    docker logs "$NAME" > server.log 2>&1
    grep -q "Ready to process requests" server.log && break
    [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" = true ] || { docker logs "$NAME"; exit 1; }
    sleep 0.2
done
radtest alice "alice-password,$(docker exec "$NAME" mfa-admin code alice)" 127.0.0.1:"$PORT" 0 testing123 | tee radtest.out
grep -q "Received Access-Accept" radtest.out || { docker logs "$NAME"; exit 1; }

echo "== runs as freerad, logs on stdout, healthy, no compiler"
uid=$(docker exec "$NAME" awk '/^Uid:/ { print $2 }' /proc/1/status)
[ "$uid" = "$(docker exec "$NAME" id -u freerad)" ] || { echo "test-image: the server runs as uid $uid" >&2; exit 1; }
docker logs "$NAME" > server.log 2>&1
grep -q "Ready to process requests" server.log || { echo "test-image: no log on stdout" >&2; exit 1; }
docker run --rm -v "$NAME-tokens:/v:ro" debian:trixie stat -c '%n %a' /v/tokens.json
docker run --rm -v "$NAME-state:/v:ro" debian:trixie stat -c '%n %a' /v/state.jsonl
for _ in $(seq 60); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$NAME")
    [ "$health" = starting ] || break
    sleep 1
done
[ "$health" = healthy ] || { echo "test-image: health $health" >&2; docker inspect -f '{{json .State.Health}}' "$NAME"; exit 1; }
if docker run --rm --entrypoint sh rlm-mfa -c 'command -v cc || command -v gcc || command -v rustc || command -v cargo || command -v clang'; then
    echo "test-image: the image holds a compiler" >&2; exit 1
fi
echo "test-image: passed (image $(docker image inspect -f '{{.Size}}' rlm-mfa | awk '{ printf "%.0f MB", $1 / 1e6 }'), user freerad, $health)"
