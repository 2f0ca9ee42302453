# The bedrock-batch image for the Kubernetes and AWS Batch examples (examples/): the binary
# and CA certificates on a slim Debian, run as a non-root user. Build it from the repository
# root:
#
#   docker build -t bedrock-batch .
#
# Stage 1 builds the release binary from the locked dependencies. Stage 2 adds only the CA
# certificates to Debian's slim image: the binary links against nothing but glibc and libgcc
# (`ldd target/release/bedrock-batch`: libc, libm, libgcc_s), and the examples need a shell
# (`sh -c`) to put the shard index into --out and to expand `shard-*` for merge, which is why
# this is not a distroless image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY aws-models ./aws-models
RUN cargo build --release --locked --bin bedrock-batch \
    && strip target/release/bedrock-batch

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /work bedrock-batch
COPY --from=build /src/target/release/bedrock-batch /usr/local/bin/bedrock-batch
# Run directories go under the working directory unless --out names another place; the
# examples mount their shared volume at /runs (writable by uid 10001: fsGroup in Kubernetes).
WORKDIR /work
USER 10001
# No ENTRYPOINT: AWS Batch's `command` replaces CMD only, and the examples' commands are
# `sh -c "bedrock-batch ..."`. Locally: docker run --rm bedrock-batch bedrock-batch --help
CMD ["bedrock-batch", "--help"]
