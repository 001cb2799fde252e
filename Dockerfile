# syntax=docker/dockerfile:1
# keyhole: a static binary on an empty base image, run as a non-root user.
#   docker build -t keyhole .
#   docker run --read-only -v $PWD/keyhole.yaml:/etc/keyhole/keyhole.yaml:ro -v keyhole-state:/var/lib/keyhole \
#     -e STRIPE_SECRET_KEY -p 8080:8080 keyhole
# keyhole writes only into the state dir, so the root filesystem can be
# read-only (deploy/kubernetes runs it so).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/keyhole ./cmd/keyhole
# The state dir must exist, owned by the runtime user, before it becomes a volume.
RUN mkdir -p /out/state /out/public && chown 65532:65532 /out/state /out/public && chmod 0700 /out/state

FROM scratch
# System roots: keyhole verifies every upstream against them.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/keyhole /keyhole
COPY --from=build --chown=65532:65532 /out/state /var/lib/keyhole
COPY --from=build --chown=65532:65532 /out/public /var/lib/keyhole-public
ENV KEYHOLE_LISTEN=0.0.0.0:8080 \
    KEYHOLE_ADMIN_LISTEN=0.0.0.0:9090 \
    KEYHOLE_STATE_DIR=/var/lib/keyhole \
    KEYHOLE_RULES=/etc/keyhole/keyhole.yaml \
    KEYHOLE_AUDIT_LOG=-
USER 65532:65532
# The CA key, the token key and the revocation list live here: keep it.
VOLUME ["/var/lib/keyhole"]
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/keyhole", "health"]
ENTRYPOINT ["/keyhole", "serve"]
