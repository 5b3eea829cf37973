# syntax=docker/dockerfile:1
# The oci-storage container image, for people who build with Docker (BuildKit):
#
#   version=$(cargo pkgid -p oci-storage-server | sed 's/.*[@#]//')
#   docker build -t "oci-storage:$version" \
#     --build-arg VERSION="$version" --build-arg REVISION="$(git rev-parse HEAD)" .
#
# scripts/build-image.sh builds the same image without Docker (on a base of just the Debian
# packages of distroless/cc that the binary uses) and is what the tests run. Keep the two in
# step: tests/e2e/container_image.rs compares this stage's settings with the script's image.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p oci-storage-server \
    && install -D -m 0755 target/release/oci-storage /out/oci-storage \
    && mkdir /out/data

# Debian 12 with glibc, libgcc, CA certificates and time zones (and a little more), no shell;
# its user nonroot is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=""
ARG REVISION=""
LABEL org.opencontainers.image.title="oci-storage" \
      org.opencontainers.image.description="A lightweight OCI registry for Helm charts and container images" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://example.invalid/oci-storage" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/oci-storage /usr/local/bin/oci-storage
COPY --from=build --chown=65532:65532 /out/data /data
# The embedded default configuration, with fs storage on the volume. Environment overrides
# win over a --config file too: with another storage path, set this variable to it.
ENV OCI_STORAGE__STORAGE__FS__PATH=/data
VOLUME /data
WORKDIR /
USER 65532:65532
EXPOSE 3030
# No HEALTHCHECK: the image has no HTTP client and the binary no health-check command. Probe
# GET /healthz (liveness) and /readyz (readiness) from outside, as the Helm chart does.
ENTRYPOINT ["/usr/local/bin/oci-storage"]
CMD ["serve"]
