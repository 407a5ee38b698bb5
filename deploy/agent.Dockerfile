# The Slipway agent image: one static binary and the CA certificates on an
# empty base. Build it from the repository root:
#
#   docker build -f deploy/agent.Dockerfile -t slipway-agent .
#   docker run --rm -v $PWD/agent.yaml:/etc/slipway/agent.yaml:ro \
#     -e SLIPWAY_SERVER=http://slipway.internal:7070 -e AWS_REGION=us-east-2 slipway-agent
#
# AWS credentials come from the SDK's default chain: an ECS task role, EC2
# instance profile (IMDS), or AWS_* environment variables; never bake them in.
# A `builder: {type: docker}` agent also needs the engine's socket mounted
# (-v /var/run/docker.sock:/var/run/docker.sock) and a user that may use it;
# the `oci` and `kaniko` builders and prebuilt images need no engine.

ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary (the SQLite driver is pure Go), so the
# runtime image needs no libc.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/slipway ./cmd/slipway \
 && mkdir -p /out/etc/ssl/certs /out/etc/slipway /out/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt

FROM scratch
COPY --from=build /out/ /
# Jobs' scratch files (code tarballs, build contexts) go under TMPDIR.
ENV TMPDIR=/tmp
# nonroot: nothing in the agent needs root.
USER 65532:65532
ENTRYPOINT ["/slipway", "agent"]
CMD ["-c", "/etc/slipway/agent.yaml"]
