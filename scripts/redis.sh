#!/usr/bin/env bash
# Redis for the tests of the shared state store (tests/redis.rs), from Debian's
# own packages: redis-tools (whose redis-check-rdb binary is the server, run as
# redis-server or redis-sentinel) and the libraries it needs that the system
# lacks, unpacked into .deps/redis with `apt-get download` and `dpkg -x`.
# Nothing is installed and no service is started: the tests start their own
# servers on free loopback ports. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${REDIS_DIR:-$PWD/.deps/redis}
if [ -x "$DEST/bin/redis-server" ] && "$DEST/bin/redis-server" --version >/dev/null 2>&1; then
    echo "redis: $("$DEST/bin/redis-server" --version | cut -d' ' -f1-3) in $DEST"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
rm -rf "$DEST"
mkdir -p "$DEST/debs" "$DEST/root" "$DEST/bin"
download() {
    # apt-get download writes into the current directory; _apt cannot write there as root.
    (cd "$DEST/debs" && apt-get download "$@" 2>/dev/null) && return 0
    echo "redis: apt-get update (the package lists are missing or old)"
    $SUDO apt-get update -qq
    (cd "$DEST/debs" && apt-get download "$@")
}
echo "redis: apt-get download redis-tools (unpacked into $DEST, not installed)"
download redis-tools
# The libraries redis-tools depends on that are not installed here.
deps=$(dpkg-deb -f "$DEST"/debs/redis-tools_*.deb Depends | tr ',' '\n' | sed 's/[(|].*//; s/ //g' | sort -u)
missing=()
for p in $deps; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "redis: apt-get download ${missing[*]}"
    download "${missing[@]}"
fi
for deb in "$DEST"/debs/*.deb; do dpkg -x "$deb" "$DEST/root"; done
rm -rf "$DEST/debs"
# Library folders relative to the unpacked tree, so that the folder can move.
libs=$(cd "$DEST/root" && find . -name '*.so*' -printf '%h\n' | sort -u | sed 's|^\./||')
for name in redis-server redis-sentinel redis-cli; do
    real=redis-check-rdb
    [ $name = redis-cli ] && real=redis-cli
    {
        echo '#!/usr/bin/env bash'
        echo 'root=$(dirname "$(readlink -f "$0")")/../root'
        echo -n 'export LD_LIBRARY_PATH='
        for l in $libs; do echo -n "\$root/$l:"; done
        echo '${LD_LIBRARY_PATH:-}'
        # exec -a: the server picks its role by the name it is run as.
        echo "exec -a $name \"\$root/usr/bin/$real\" \"\$@\""
    } > "$DEST/bin/$name"
    chmod +x "$DEST/bin/$name"
done
echo "redis: $("$DEST/bin/redis-server" --version | cut -d' ' -f1-3) in $DEST"
