#!/usr/bin/env bash
# Installs what building and testing rlm_mfa needs on Debian 12 (bookworm,
# FreeRADIUS 3.2.1) or Debian 13 (trixie, FreeRADIUS 3.2.7), and fetches the
# FreeRADIUS headers that Debian's libfreeradius-dev leaves out from Debian's
# source package of the installed version, into .deps/ (never committed).
# Safe to run again: it only does what is missing.
#
# It leaves the administrator's system alone apart from the packages it installs
# (and says which before it does): it does not touch the system's apt sources,
# nor stop, restart or reconfigure a running FreeRADIUS (the tests and the demo
# run servers of their own on other ports).
#
#   scripts/setup.sh [--packaging]   --packaging: also debhelper and build-essential, for scripts/package.sh
#
#   FREERADIUS_SOURCE_DIR   where the missing headers go (default .deps/freeradius-src,
#                           where build.rs looks for them too)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: installing packages needs root or sudo" >&2; exit 1; }
    SUDO="sudo"
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

updated=0
apt_install() {
    local missing=() p
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: installing Debian packages (apt-get update; apt-get install): ${missing[*]}"
    if [ $updated = 0 ]; then
        $SUDO apt-get update -qq
        updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The server and radtest/radclient (tests, demo), its headers, bindgen's libclang,
# ca-certificates for cargo's downloads, xz-utils for Debian's source tarball,
# eapoltest (eapol_test, the 802.1X client of tests/eap.rs), openssl (its test certificate)
# and procps (kill and ps, which the tests use on their servers; a minimal Debian lacks them).
apt_install freeradius freeradius-utils libfreeradius-dev libclang-dev clang ca-certificates xz-utils eapoltest openssl procps
if [ "${1:-}" = --packaging ]; then apt_install debhelper build-essential; fi

# The headers of other packages that the installed FreeRADIUS headers include, as
# their autoconf.h says (include/header-packages: condition, header, package).
autoconf=/usr/include/freeradius/autoconf.h
defined() { [ "$1" = always ] || grep -qE "^#define[[:space:]]+$1([[:space:]]|$)" "$autoconf"; }
needed=()
while read -r condition _header package; do
    case "$condition" in '#'* | '') continue ;; esac
    if defined "$condition"; then needed+=("$package"); fi
done < include/header-packages
apt_install "${needed[@]}"

if command -v systemctl >/dev/null && systemctl is-active --quiet freeradius 2>/dev/null; then
    echo "setup: the system's FreeRADIUS is running; left as it is (the tests and the demo use other ports)"
fi

# Headers radiusd.h includes that libfreeradius-dev does not ship, from the source
# package of exactly the installed version. apt-get runs with a source list, index
# and cache of its own under .deps/apt (deb-src twins of the system's deb entries),
# so the system's apt configuration and state are only read, never changed, and
# no root is needed.
version=$(dpkg-query -W -f='${Version}' libfreeradius-dev)
src=${FREERADIUS_SOURCE_DIR:-.deps/freeradius-src}
stamp=$src/.debian-version
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$version" ]; then
    echo "setup: fetching the FreeRADIUS $version headers Debian's package leaves out from Debian's"
    echo "setup: source package into $src (apt-get with its own source list in .deps/apt)"
    apt=$PWD/.deps/apt
    rm -rf "$apt"
    mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" .deps/download
    : > "$apt/sources.list"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -nE 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "$f" >> "$apt/sources.list"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed -E 's/^Types:.*/Types: deb-src/' "$f" > "$apt/sources.list.d/$(basename "$f")"
    done
    APT=(apt-get -q -o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
         -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
    # A third-party repository without sources makes update complain: only the
    # source package's download decides.
    "${APT[@]}" update > "$apt/update.log" 2>&1 || true
    rm -rf .deps/download "$src"
    mkdir -p .deps/download "$src"
    # Only the upstream tarball is used (its src/include), the same for every Debian
    # revision of one upstream version: where the mirror lacks the installed revision's
    # source (some mirrors carry no security sources), another revision's will do.
    upstream() { sed -E 's/^[0-9]+://; s/-[^-]*$//'; }
    fetch_source() {
        local v
        (cd .deps/download && "${APT[@]}" source --download-only "freeradius=$version") > "$apt/source.log" 2>&1 && return 0
        for v in $(apt-cache -o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d" \
            -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" showsrc freeradius 2>/dev/null |
            awk '/^Version:/ { print $2 }'); do
            [ "$v" != "$version" ] && [ "$(echo "$v" | upstream)" = "$(echo "$version" | upstream)" ] || continue
            echo "setup: the source of $version is not on the mirror; using $v's (same upstream tarball)"
            rm -rf .deps/download && mkdir -p .deps/download
            (cd .deps/download && "${APT[@]}" source --download-only "freeradius=$v") >> "$apt/source.log" 2>&1 && return 0
        done
        return 1
    }
    fetch_source || {
        cat "$apt/update.log" "$apt/source.log" >&2
        echo "setup: apt-get source freeradius=$version failed (see above): the Debian mirror of the" >&2
        echo "setup: system's apt sources must carry the source package of the installed version" >&2
        exit 1
    }
    tarball=$(ls .deps/download/freeradius_*.orig.tar.* | head -n 1)
    tar -xf "$tarball" -C "$src" --strip-components=1 --wildcards '*/src/include/*'
    echo "$version" > "$stamp"
    rm -rf .deps/download "$apt"
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is missing: install Rust first" >&2
    exit 1
fi
echo "setup: ready (FreeRADIUS $(dpkg-query -W -f='${Version}' freeradius))"
