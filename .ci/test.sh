#!/usr/bin/env bash
# The README's test command (bash .ci/test.sh): installs what the tests need,
# starts it, and runs every check. CI runs exactly this through .ci/run with
# CI=true, where a missing component fails a test instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n=== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "packages"
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
have /usr/sbin/sshd || need+=(openssh-server)
have ssh || need+=(openssh-client)
have rsync || need+=(rsync)
have dockerd || need+=(docker.io)
have chromium || need+=(chromium)
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && ldd /bin/busybox 2>&1 | grep -q "not a dynamic" || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" ca-certificates >/dev/null
fi
mkdir -p /run/sshd

step "docker engine"
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd --bridge=none --iptables=false"
  nohup dockerd --bridge=none --iptables=false --ip6tables=false >/tmp/gatehouse-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not start; last lines of /tmp/gatehouse-dockerd.log:"; tail -20 /tmp/gatehouse-dockerd.log
    exit 1
  fi
fi
if ! docker image inspect gatehouse-test-busybox:latest >/dev/null 2>&1; then
  ctx=$(mktemp -d)
  cp /bin/busybox "$ctx/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["/bin/sh"]\n' >"$ctx/Dockerfile"
  docker build -q -t gatehouse-test-busybox:latest "$ctx"
  rm -rf "$ctx"
fi
export GATEHOUSE_TEST_IMAGE=gatehouse-test-busybox:latest

step "go modules"
go version
go mod download

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

step "go vet"
go vet ./...

step "tests (race detector on the concurrent packages)"
go test -race -count=1 -timeout 25m ./gateway/... ./recorder/... ./auth/... ./policy/... ./internal/... ./web/...

step "tests (the rest)"
go test -count=1 -timeout 10m ./cmd/... ./bench/...

step "govulncheck"
if go install golang.org/x/vuln/cmd/govulncheck@latest >/dev/null 2>&1; then
  rc=0
  timeout 300 "$(go env GOPATH)/bin/govulncheck" ./... >/tmp/govulncheck.out 2>&1 || rc=$?
  tail -5 /tmp/govulncheck.out
  # Exit status 3 means vulnerabilities were found in code we call.
  if [ "$rc" = 3 ]; then cat /tmp/govulncheck.out; exit 1; fi
  [ "$rc" = 0 ] || echo "govulncheck could not run here (exit $rc, usually no access to vuln.go.dev); not counted"
else
  echo "govulncheck could not be installed here; skipped"
fi

step "done"
