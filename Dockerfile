# Gatehouse container image: one static binary, no shell needed.
#   docker build -t gatehouse .
#   docker run -v gatehouse-data:/var/lib/gatehouse -v $PWD/gatehouse.yaml:/etc/gatehouse/gatehouse.yaml \
#     -p 2222:2222 -p 8443:8443 gatehouse
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/gatehouse ./cmd/gatehouse

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/gatehouse --create-home gatehouse
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
USER gatehouse
ENV GATEHOUSE_CONFIG=/etc/gatehouse/gatehouse.yaml
VOLUME /var/lib/gatehouse
EXPOSE 2222 8443
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
