# Gatehouse container image: one static binary FROM scratch, non-root, with a
# HEALTHCHECK through `gatehouse healthcheck` (needs metrics.listen set).
#
#   docker build -t gatehouse .
#   docker run -d --name gatehouse \
#     -v gatehouse-data:/var/lib/gatehouse \
#     -v $PWD/gatehouse.yaml:/etc/gatehouse/gatehouse.yaml:ro \
#     -v /etc/gatehouse/master.key:/run/secrets/gatehouse-master-key:ro \
#     -p 2222:2222 -p 8443:8443 gatehouse
#
# Without a registry (air-gapped builds, CI here), build the binary on the
# host and use Dockerfile.prebuilt instead; its final image is the same. See
# docs/deploy.md.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /ctx/gatehouse ./cmd/gatehouse \
 && mkdir -p /ctx/data && touch /ctx/data/.keep \
 && cp /etc/ssl/certs/ca-certificates.crt /ctx/ca-certificates.crt

FROM scratch
COPY --from=build /ctx/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /ctx/data/ /var/lib/gatehouse/
COPY --from=build /ctx/gatehouse /gatehouse
USER 65532:65532
ENV GATEHOUSE_CONFIG=/etc/gatehouse/gatehouse.yaml
VOLUME /var/lib/gatehouse
EXPOSE 2222 8443 9464
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["/gatehouse", "healthcheck"]
ENTRYPOINT ["/gatehouse"]
CMD ["serve"]
