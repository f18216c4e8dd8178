#!/usr/bin/env bash
# The Debian packages of both releases, built and tried as an administrator would:
# - Debian 12's (FreeRADIUS 3.2.1) is built on this machine (scripts/package.sh;
#   cargo reuses scripts/test.sh's build), Debian 13's (FreeRADIUS 3.2.7, Debian
#   13's Rust) in the Dockerfile's build stage, which the image and
#   scripts/test-debian13.sh reuse; both land in target/debian/deb12 and deb13.
# - What is shipped is stripped, and the debug symbols are in rlm-mfa-dbgsym.
# - Each is installed in a clean container of its release (scripts/package-check.sh:
#   apt install ./rlm-mfa_*.deb, enabled as README.md says, freeradius -XC, one
#   radtest Access-Accept, removed and purged).
# Missing Debian base images are made by scripts/debian-image.sh. Downloads of
# the containers' apt are kept in .deps/apt-archives (a second run is fast).
# Debian 12's package is built only on a Debian 12 machine (what CI runs on): on
# Debian 13 (whose own package is the build stage's) it is left out, and said so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
case "$(. /etc/os-release && echo "${ID:-}-${VERSION_ID:-}")" in
    debian-12) releases=(bookworm trixie) ;;
    debian-13)
        releases=(trixie)
        echo "== Debian 12's package is built on a Debian 12 machine: this one tries Debian 13's alone"
        ;;
    *) echo "test-packages: builds the packages on Debian 12 (both releases) or Debian 13 (its own)" >&2; exit 1 ;;
esac
mkdir -p target/debian
scripts/debian-image.sh "${releases[@]}"

if [ "${releases[0]}" = bookworm ]; then
    echo "== Debian 12: scripts/package.sh target/debian/deb12"
    scripts/package.sh target/debian/deb12
fi

echo "== Debian 13: the Dockerfile's build stage (docker build --target build -t rlm-mfa-build:trixie .)"
docker build -q --target build -t rlm-mfa-build:trixie . > target/debian/build-stage.log 2>&1 ||
    { tail -n 60 target/debian/build-stage.log; exit 1; }
rm -rf target/debian/deb13 && mkdir -p target/debian/deb13
id=$(docker create rlm-mfa-build:trixie)
docker cp "$id:/out/." target/debian/deb13/ && docker rm "$id" > /dev/null
ls -l target/debian/deb13/*.deb

echo "== shipped stripped, with the debug symbols apart"
for release in "${releases[@]}"; do
    dir=target/debian/deb$([ "$release" = bookworm ] && echo 12 || echo 13)
    x=$(mktemp -d)
    dpkg-deb -x "$dir"/rlm-mfa_*.deb "$x/pkg"
    dpkg-deb -x "$dir"/rlm-mfa-dbgsym_*.*deb "$x/dbg"
    for bin in usr/lib/freeradius/rlm_mfa.so usr/sbin/mfa-admin; do
        if readelf -S "$x/pkg/$bin" | grep -E '\.debug_(info|line)|\.symtab' > /dev/null; then
            echo "test-packages: $dir: $bin is not stripped" >&2; exit 1
        fi
        buildid=$(readelf -n "$x/pkg/$bin" | awk '/Build ID/ { print $3 }')
        debug=$x/dbg/usr/lib/debug/.build-id/${buildid:0:2}/${buildid:2}.debug
        readelf -S "$debug" 2>/dev/null | grep '\.debug_info' > /dev/null ||
            { echo "test-packages: $dir: no debug symbols for $bin (build id $buildid) in rlm-mfa-dbgsym" >&2; exit 1; }
        echo "$dir: $bin $(stat -c %s "$x/pkg/$bin") bytes, stripped; debug symbols $(stat -c %s "$debug") bytes in rlm-mfa-dbgsym"
    done
    rm -rf "$x"
done

for release in "${releases[@]}"; do
    n=$([ "$release" = bookworm ] && echo 12 || echo 13)
    echo "== Debian $n: installed, used, removed and purged in a clean debian:$release container"
    mkdir -p ".deps/apt-archives/$release/partial"
    docker run --rm -v "$ROOT/target/debian/deb$n:/debs:ro" -v "$ROOT/scripts/package-check.sh:/package-check.sh:ro" \
        -v "$ROOT/.deps/apt-archives/$release:/var/cache/apt/archives" "debian:$release" /package-check.sh \
        > "target/debian/check-deb$n.log" 2>&1 || { cat "target/debian/check-deb$n.log"; exit 1; }
    grep -E "^== |conffiles:|Received|OK|removed and purged|package-check:" "target/debian/check-deb$n.log"
done
echo "test-packages: passed"
