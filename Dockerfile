# syntax=docker/dockerfile:1
#
# dynup's image (the default: the last stage) and the demo backend (--target backend): static Go binaries on
# distroless, running as the image's non-root user (uid 65532). docker-compose.yml builds both.
#
#   docker build -t dynup .
#   docker run --rm dynup --help

# The golang image pins its toolchain (GOTOOLCHAIN=local), so this must be at least go.mod's go version
# (test/compose checks it).
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first: a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: the binaries run on an image without a C library.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/dynup ./cmd/dynup
RUN go build -trimpath -ldflags="-s -w" -o /out/backend ./demo/backend
# The data directory, created here because distroless has no shell to create it; the stage below hands it
# to the non-root user, and a named volume mounted there starts with that owner.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot AS backend
COPY --from=build /out/backend /usr/local/bin/backend
USER 65532:65532
# HTTP and gRPC on one port: Registrator (-internal) registers a container's exposed port, one service per
# port, so one port serves Envoy and gRPC clients alike.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/backend"]

FROM gcr.io/distroless/static-debian12:nonroot AS dynup
COPY --from=build /out/dynup /usr/local/bin/dynup
COPY --from=build --chown=65532:65532 /out/data /var/lib/dynup
USER 65532:65532
VOLUME /var/lib/dynup
# Admin API and xDS. Inside a container they must listen on all interfaces to be reachable at all, so the
# admin API needs a token: docker run -e DYNUP_ADMIN_TOKEN=$(openssl rand -hex 16) … (dynup refuses to start
# without one). docker-compose.yml instead publishes the admin port on the host's loopback only.
EXPOSE 1995 18000
ENTRYPOINT ["/usr/local/bin/dynup"]
CMD ["--admin-addr", "0.0.0.0:1995", "--xds-addr", "0.0.0.0:18000", "--data-dir", "/var/lib/dynup"]
