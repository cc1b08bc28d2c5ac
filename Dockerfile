# orderflow node image.
#
#   docker build -t orderflow .
#   docker compose up --build        (see docker-compose.yml)
#
# Multi-stage: compile in the Rust image, ship only the binary on slim Debian.
# The builder is pinned to *bookworm* to match the runtime's glibc (the plain
# `rust:<ver>-slim` tag may track a newer Debian whose glibc bookworm lacks).
# 1.89 is the workspace's rust-version (MSRV).

FROM rust:1.89-slim-bookworm AS builder
WORKDIR /src
# The whole context minus .dockerignore: target/, .tools/, var/ and .git/ stay out.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin orderflow \
    && install -D -m 0755 target/release/orderflow /out/orderflow

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/orderflow orderflow \
    && install -d -o orderflow -g orderflow /var/lib/orderflow
COPY --from=builder /out/orderflow /usr/local/bin/orderflow
USER orderflow
# Working directory = node-local state (sled snapshots); mount a volume here.
WORKDIR /var/lib/orderflow
# Inside a container the HTTP facade must listen beyond loopback.
ENV ORDERFLOW_HTTP__ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/orderflow"]
CMD ["serve"]
