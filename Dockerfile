# natcheck in a container: a static binary in an otherwise empty image,
# run as an unprivileged user.
#
#   docker build --build-arg VERSION=v1.2.0 -t natcheck .
#   docker run --rm --network host natcheck serve --listen 203.0.113.10 --listen 203.0.113.11
#   docker run --rm --network host natcheck type
#
# serve needs --network host: RFC 5780 answers name the server's own
# addresses, so no NAT may sit between them and the clients (docs/serve.md).
# With BuildKit, --platform linux/arm64 cross-compiles in the builder.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: this layer stays cached while only the sources change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=
ARG TARGETOS
ARG TARGETARCH
# The flags of scripts/release.sh: the binary is the release archive's,
# byte for byte, for the same VERSION and Go release.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
    -ldflags="-s -w -buildid= -X github.com/natcheck/natcheck/cmd.stampedVersion=${VERSION}" \
    -o /out/natcheck .

FROM scratch
# CA certificates for the client commands that speak TLS (turn with turns:).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/natcheck /natcheck
# No user database in the image: a numeric user and group, not root.
USER 65532:65532
# serve's defaults: primary port 3478, alternate port 3479, UDP and TCP.
EXPOSE 3478/udp 3478/tcp 3479/udp 3479/tcp
ENTRYPOINT ["/natcheck"]
CMD ["serve", "--help"]
