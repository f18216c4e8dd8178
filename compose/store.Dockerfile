# The shared state store of the compose example: Debian's Redis, keeping its data
# (an append-only file, so that HOTP counters survive a restart) in a volume. On
# the compose network only; a store reached from elsewhere wants a password (ACL)
# and TLS, which rlm_mfa's redis { } section supports.
FROM debian:trixie
LABEL rlm-mfa.image=store
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--appendonly", "yes", "--dir", "/var/lib/redis"]
