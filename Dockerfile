# syntax=docker/dockerfile:1
#
# The eventstream-operator image: operator, bridge and eventctl as static binaries on
# distroless static:nonroot.
#
# LAYOUT CONTRACT: hack/image.sh builds the same image without a container engine (the e2e tests
# and the demo use it). Both must produce the same layout; change them together:
#   /operator /bridge /eventctl    static linux binaries (CGO_ENABLED=0), owner 65532:65532
#   /etc/passwd /etc/group with nonroot (65532), /etc/ssl/certs/ca-certificates.crt,
#   /tmp (1777), /home/nonroot       (from distroless static:nonroot)
#   USER 65532:65532   ENTRYPOINT ["/operator"]   WORKDIR /home/nonroot
# The bridge Deployment runs the same image with command ["/bridge"].
#
# Build: docker build --build-arg VERSION=TAG -t REGISTRY/eventstream-operator:TAG .
#        (VERSION is what --version prints; give the image tag, as hack/image.sh does;
#        without it, hack/version.sh: the chart's appVersion)
#        (multi-platform: docker buildx build --platform linux/amd64,linux/arm64 ...)

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
# Set by BuildKit from --platform; the build step defaults to linux/amd64 without them.
ARG TARGETOS
ARG TARGETARCH
# Printed by --version of the three binaries: the image tag; when not given, the project's
# version (hack/version.sh: the chart's appVersion, the tag the chart deploys by default).
ARG VERSION=
WORKDIR /src
COPY go.mod go.sum ./
# go.mod replaces amqp091-go with the patched copy in third_party/ (third_party/README.md).
COPY third_party/ third_party/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    version=${VERSION:-$(hack/version.sh)} && \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64} \
    go build -trimpath \
      -ldflags="-s -X github.com/eventstream-operator/eventstream-operator/internal/version.Version=${version}" \
      -o /out/ ./cmd/operator ./cmd/bridge ./cmd/eventctl

FROM gcr.io/distroless/static:nonroot
COPY --from=build --chown=65532:65532 /out/operator /out/bridge /out/eventctl /
WORKDIR /home/nonroot
USER 65532:65532
ENTRYPOINT ["/operator"]
