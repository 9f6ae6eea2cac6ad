# syntax=docker/dockerfile:1
# The demo backend of docker/compose.yaml (examples/demo-shop: a small shop API and the page that
# loads /rum.js), traced with OpenTelemetry. Build from the repository root:
#   docker build -f docker/demo-shop.Dockerfile -t rum-bridge-demo-shop .

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/build-release.sh --example demo-shop \
    && install -D -m 0755 target/release/examples/demo-shop /out/demo-shop

FROM debian:${DEBIAN_RELEASE}-slim
RUN useradd --system --uid 10001 --user-group demo-shop
COPY --from=build /out/demo-shop /usr/local/bin/demo-shop
USER 10001:10001
EXPOSE 8080 8081 8082
ENTRYPOINT ["demo-shop"]
