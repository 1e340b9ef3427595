# syntax=docker/dockerfile:1
# mdrelay container image: a Rust builder stage, then a slim Debian runtime
# with the binary, the default config and venue files, running as a non-root
# user. Build and run (README, "Install and run in production"):
#   docker build -t mdrelay .
#   docker compose up -d          # with NATS, Prometheus and Grafana
# Mount your own config and venues over /etc/mdrelay/relay.toml and
# /etc/mdrelay/venues; NATS_URL and the other `${VAR}` values of
# relay.toml come from the environment.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target/ between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mdrelay \
 && install -D -m 0755 target/release/mdrelay /out/mdrelay

FROM debian:${DEBIAN_RELEASE}-slim
# curl: the health check. ca-certificates: TLS to NATS with system roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mdrelay \
 && useradd --system --uid 10001 --gid mdrelay --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin mdrelay
COPY --from=build /out/mdrelay /usr/local/bin/mdrelay
COPY config/relay.toml /etc/mdrelay/relay.toml
COPY venues/ /etc/mdrelay/venues/
# `venues_dir` (default `venues`) resolves against the working directory.
WORKDIR /etc/mdrelay
ENV MDRELAY_CONFIG=/etc/mdrelay/relay.toml \
    MDRELAY_HTTP=0.0.0.0:8080
USER 10001:10001
EXPOSE 8080
# /health answers 503 when NATS is down or no venue connection is up.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["mdrelay"]
# SIGTERM drains the queues within `[service] shutdown_timeout` (10s by
# default): give `docker stop` more than that (`-t 30`, compose's
# stop_grace_period).
CMD ["run", "--http-listen", "0.0.0.0:8080"]
