# rlm_mfa in a container: FreeRADIUS 3.2 (Debian 13's) with the module and mfa-admin.
#
#   docker build -t rlm-mfa .
#
# The build stage builds the module from source with Debian's packages (Debian 13's
# Rust 1.85) and crates from crates.io, into the Debian package (scripts/package.sh:
# the module and mfa-admin stripped, their debug symbols in rlm-mfa-dbgsym, which
# stays in the build stage, /out). The runtime stage is Debian's FreeRADIUS with
# that package installed and enabled as README.md says, and no compiler.
# Volumes: /etc/freeradius/3.0/mods-config/mfa (token file, State key) and
# /var/lib/freeradius/mfa (state journal); the RADIUS clients come from files put
# in /etc/freeradius/3.0/clients.d, the users file (first factor) at
# /etc/freeradius/3.0/mods-config/files/authorize. README.md, "Container".

FROM debian:trixie AS build
# What scripts/test.sh removes once a rebuild leaves it untagged.
LABEL rlm-mfa.image=build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cargo rustc ca-certificates
WORKDIR /src
# setup.sh: the FreeRADIUS headers and what they include (from autoconf.h), libclang,
# debhelper, and the headers Debian's package leaves out (from its source package);
# a layer of its own, kept when only the sources change.
COPY scripts/setup.sh scripts/
COPY include/header-packages include/
RUN scripts/setup.sh --packaging
# The dependencies from crates.io, built as debian/rules builds the module and
# mfa-admin, in a layer that only the manifests, Cargo.lock and debian/ change: the
# workspace's crates are empty stand-ins here, removed afterwards with what cargo
# built of them, so that the real ones are always built from their sources below.
COPY Cargo.toml Cargo.lock ./
COPY crates/mfa-core/Cargo.toml crates/mfa-core/
COPY crates/mfa-admin/Cargo.toml crates/mfa-admin/
COPY debian debian
RUN mkdir -p src crates/mfa-core/src crates/mfa-admin/src \
    && touch src/lib.rs crates/mfa-core/src/lib.rs \
    && echo 'fn main() {}' | tee build.rs > crates/mfa-admin/src/main.rs \
    && debian/rules override_dh_auto_build \
    && cargo clean --locked -p rlm_mfa -p mfa-core -p mfa-admin --release \
    && cargo clean --locked -p rlm_mfa -p mfa-core -p mfa-admin --profile module --target-dir target/freeradius \
    && rm -r src crates/mfa-core/src crates/mfa-admin/src build.rs
# The Rust build as debian/rules does it, in a layer that only the Rust sources,
# the headers' list and debian/ change; the package is then made from it.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY crates crates
COPY include include
COPY debian debian
RUN debian/rules override_dh_auto_build
COPY . .
RUN scripts/package.sh /out

FROM debian:trixie
LABEL rlm-mfa.image=module
COPY --from=build /out/*.deb /tmp/
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/rlm-mfa_*.deb freeradius-utils \
    && rm -rf /var/lib/apt/lists/* /tmp/*.deb
# Enabled as README.md says; the server runs as freerad from the start, so it does not
# switch users itself; clients come from clients.d (Debian's localhost client stays:
# the health check uses it).
RUN cd /etc/freeradius/3.0 \
    && ln -s ../mods-available/mfa mods-enabled/mfa \
    && rm sites-enabled/default && ln -s ../sites-available/mfa sites-enabled/mfa \
    && sed -i -E 's/^([[:space:]]*)(user|group) = freerad/\1#\2 = freerad/' radiusd.conf \
    && install -d -o root -g freerad -m 0750 clients.d \
    && printf '\n# Clients of this container: files in clients.d.\n$INCLUDE clients.d/\n' >> clients.conf \
    && install -d -o freerad -g freerad -m 0755 /run/freeradius
VOLUME ["/etc/freeradius/3.0/mods-config/mfa", "/var/lib/freeradius/mfa"]
EXPOSE 1812/udp
USER freerad
# Status-Server from inside the container: any answer means the server is up.
# -r 2: radclient 3.2.7 with one try may stop at the next tick of the clock
# without waiting for the answer, and exit 0.
HEALTHCHECK --interval=10s --timeout=10s --start-period=30s --retries=3 \
    CMD echo "Message-Authenticator = 0x00" | radclient -q -r 2 -t 3 127.0.0.1:1812 status testing123 || exit 1
# Logs on stdout (docker logs).
CMD ["freeradius", "-f", "-l", "stdout"]
