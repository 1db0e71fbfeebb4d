# syntax=docker/dockerfile:1
# crew-operator container image: a static (musl) binary on distroless, running as non-root (UID 65532).
#
#   docker build -t REGISTRY/crew-operator:0.1.0 .
#   podman build -t REGISTRY/crew-operator:0.1.0 .
#
# The image has no shell; the binary is /crew-operator and the default command is `run` (all namespaces,
# in-cluster config). The Helm chart (charts/crew-operator) passes its own arguments. /kubectl-crew is beside it, for
# the chart's dashboard (`kubectl-crew dashboard --in-cluster`), with its front end built in the first stage.

ARG RUST_VERSION=1
ARG NODE_VERSION=20

# The dashboard's front end: the npm packages pinned in its package-lock.json (install scripts off), type-checked and
# bundled into dist/, which kubectl-crew's build.rs embeds.
FROM node:${NODE_VERSION}-bookworm AS dashboard
WORKDIR /dashboard
COPY crates/cli/dashboard/package.json crates/cli/dashboard/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY crates/cli/dashboard/ ./
RUN node_modules/.bin/tsc --noEmit -p . && node build.mjs

FROM rust:${RUST_VERSION}-bookworm AS build
# The musl target gives a fully static binary. Alternative without musl, a static glibc binary (checked to build
# and run where this was written, with the same cargo command):
#   --build-arg TARGET=x86_64-unknown-linux-gnu --build-arg RUSTFLAGS="-C target-feature=+crt-static"
ARG TARGET=x86_64-unknown-linux-musl
ARG RUSTFLAGS=
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "${TARGET}"
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other crates: crew-api and crew-core are compiled into the operator; the test kit, benchmark and
# cluster tests are only read as workspace members (cargo needs their manifests) and never built here.
COPY crates ./crates
COPY --from=dashboard /dashboard/dist ./crates/cli/dashboard/dist
# BuildKit cache mounts keep the crate registry and the build output between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "${TARGET}" -p crew-operator --bin crew-operator \
        -p kubectl-crew --bin kubectl-crew \
    && cp "target/${TARGET}/release/crew-operator" /crew-operator \
    && cp "target/${TARGET}/release/kubectl-crew" /kubectl-crew \
    && /crew-operator --version && /kubectl-crew --version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /crew-operator /crew-operator
COPY --from=build /kubectl-crew /kubectl-crew
USER 65532:65532
ENTRYPOINT ["/crew-operator"]
CMD ["run"]
