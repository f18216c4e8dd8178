#!/usr/bin/env bash
# Makes the Debian base image debian:RELEASE (bookworm or trixie) when Docker does
# not have it, from Debian's packages alone: debootstrap into .deps/debian-images,
# then `docker import` under the tag the Dockerfile and the tests name. Where a
# container registry is reachable, `docker pull debian:RELEASE` gives the same
# thing; here none is, so the tests make it and say so.
#
#   scripts/debian-image.sh RELEASE...
#
# The root file system is kept as .deps/debian-images/RELEASE.tar, so an image
# removed later is imported again in seconds. Like Debian's official image it has
# Debian's main, updates and security suites in /etc/apt/sources.list.d/debian.sources
# (deb822) and no package lists; the certificate authorities this machine adds
# (/usr/local/share/ca-certificates) come along. It installs debootstrap on this machine if missing
# (and says so); it changes nothing else on the system.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: scripts/debian-image.sh bookworm|trixie..." >&2; exit 2; }
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

for release in "$@"; do
    case "$release" in bookworm | trixie) ;; *) echo "debian-image: unknown release $release" >&2; exit 2 ;; esac
    tag=debian:$release
    if docker image inspect "$tag" >/dev/null 2>&1; then
        echo "debian-image: $tag is there"
        continue
    fi
    dir=.deps/debian-images
    tar=$dir/$release.tar
    if [ ! -s "$tar" ]; then
        if ! command -v debootstrap >/dev/null; then
            echo "debian-image: installing Debian's debootstrap on this machine (apt-get install debootstrap)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
        fi
        echo "debian-image: $tag is not in Docker and no registry is reachable: making it from Debian's"
        echo "debian-image: packages (debootstrap --variant=minbase $release, then docker import $tag)"
        root=$dir/$release.root
        rm -rf "$root"
        mkdir -p "$root"
        start=$SECONDS
        debootstrap --variant=minbase "$release" "$root" "$MIRROR" > "$dir/$release.log" 2>&1 || {
            tail -n 30 "$dir/$release.log" >&2
            echo "debian-image: debootstrap $release failed (log: $dir/$release.log)" >&2
            exit 1
        }
        # The official image's apt sources: main, updates and security, deb822.
        rm -f "$root/etc/apt/sources.list"
        cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOT
Types: deb
URIs: $MIRROR
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
        # The certificate authorities this machine adds to Debian's (an HTTPS proxy's, say)
        # are trusted in the image too, once its ca-certificates is installed: a
        # Dockerfile's downloads (cargo's from crates.io) go the way this machine's do.
        if ls /usr/local/share/ca-certificates/*.crt > /dev/null 2>&1; then
            mkdir -p "$root/usr/local/share/ca-certificates"
            cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
            echo "debian-image: with this machine's own certificate authorities: $(cd /usr/local/share/ca-certificates && echo *.crt)"
        fi
        # Nothing else of the build machine in the image: no package lists, no downloads, no logs.
        rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
            "$root"/var/log/*.log "$root"/var/log/apt/*
        : > "$root/etc/hostname"
        tar --numeric-owner -C "$root" -cf "$tar.tmp" .
        mv "$tar.tmp" "$tar"
        rm -rf "$root"
        echo "debian-image: debootstrap $release took $((SECONDS - start)) s"
    fi
    docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' "$tar" "$tag" >/dev/null
    echo "debian-image: imported $tag from $tar"
done
