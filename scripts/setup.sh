#!/usr/bin/env bash
# Installs what building and testing rlm_mfa needs on Debian 12 (bookworm), and
# fetches the FreeRADIUS headers that Debian's libfreeradius-dev leaves out from
# Debian's source package of the installed version, into .deps/ (never committed).
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PACKAGES=(freeradius freeradius-utils libfreeradius-dev libtalloc-dev libpcre3-dev libssl-dev
          libclang-dev clang dpkg-dev xz-utils)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

# A deb-src entry mirroring the configured deb entries, for `apt-get source`.
need_src=0
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    need_src=1
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
            $SUDO tee /etc/apt/sources.list.d/rlm-mfa-deb-src.sources >/dev/null
    elif [ -f /etc/apt/sources.list ]; then
        grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' |
            $SUDO tee /etc/apt/sources.list.d/rlm-mfa-deb-src.list >/dev/null
    fi
fi

if [ ${#missing[@]} -gt 0 ] || [ $need_src = 1 ]; then
    echo "setup: apt-get install ${missing[*]:-(source index only)}"
    $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged server starts itself on port 1812; the tests and the demo run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet freeradius 2>/dev/null; then
    $SUDO systemctl stop freeradius || true
fi

# Headers radiusd.h includes that libfreeradius-dev does not ship, from the
# source package of exactly the installed version.
version=$(dpkg-query -W -f='${Version}' libfreeradius-dev)
src=.deps/freeradius-src
stamp=$src/.debian-version
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$version" ]; then
    echo "setup: fetching FreeRADIUS $version headers from Debian's source package"
    rm -rf .deps/download "$src"
    mkdir -p .deps/download "$src"
    (cd .deps/download && apt-get source --download-only "freeradius=$version" >/dev/null 2>&1) || {
        echo "setup: apt-get source freeradius=$version failed: is a deb-src entry configured?" >&2
        exit 1
    }
    tarball=$(ls .deps/download/freeradius_*.orig.tar.* | head -n 1)
    tar -xf "$tarball" -C "$src" --strip-components=1 --wildcards '*/src/include/*'
    echo "$version" > "$stamp"
    rm -rf .deps/download
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is missing: install Rust first" >&2
    exit 1
fi
echo "setup: ready (FreeRADIUS $(dpkg-query -W -f='${Version}' freeradius))"
