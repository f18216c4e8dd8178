#!/usr/bin/env bash
# Builds the Debian package of rlm_mfa for the machine's own Debian (12 or 13) and
# the FreeRADIUS installed here, with dpkg-buildpackage (debian/): rlm-mfa_VERSION+debN_ARCH.deb
# (the module and mfa-admin, stripped; the configuration; nothing enabled) and
# rlm-mfa-dbgsym_VERSION+debN_ARCH.deb (their debug symbols), in target/debian/debN or OUTDIR.
#
#   scripts/package.sh [OUTDIR]
#
# Runs scripts/setup.sh --packaging first (Debian's build dependencies, debhelper).
# cargo builds in target/freeradius and target/, as scripts/test.sh does, so each
# reuses the other's build.
set -euo pipefail
cd "$(dirname "$0")/.."
release=$(. /etc/os-release && echo "$VERSION_ID")
out=${1:-target/debian/deb$release}
mkdir -p "$out"
out=$(cd "$out" && pwd)

scripts/setup.sh --packaging
rm -f "$out"/rlm-mfa_*+deb"$release"_* "$out"/rlm-mfa-dbgsym_*+deb"$release"_*
echo "== dpkg-buildpackage (Debian $release, FreeRADIUS $(dpkg-query -W -f='${Version}' libfreeradius-dev)) into $out"
arch=$(dpkg --print-architecture)
DEB_OUT=$out dpkg-buildpackage --build=binary --no-sign \
    --buildinfo-option="-u$out" --buildinfo-file="$out/rlm-mfa_deb${release}_$arch.buildinfo" \
    --changes-option="-u$out" --changes-file="$out/rlm-mfa_deb${release}_$arch.changes" > "$out/build-deb$release.log" 2>&1 || {
    tail -n 40 "$out/build-deb$release.log" >&2
    echo "package: dpkg-buildpackage failed (log: $out/build-deb$release.log)" >&2
    exit 1
}
ls -l "$out"/rlm-mfa*+deb"$release"_*
