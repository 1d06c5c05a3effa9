#!/usr/bin/env bash
# Runs Gatehouse side by side with OpenSSH on loopback and prints ratios.
# Needs root, openssh-server and openssh-client. Usage: bash bench/run.sh [sshbench flags]
# e.g. bash bench/run.sh -n 30 -bytes 1000000000 -idle 200
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/sbin/sshd >/dev/null || { echo "install openssh-server first (apt-get install openssh-server)"; exit 1; }
go build -o /tmp/gatehouse-bench ./cmd/gatehouse
go run ./bench/sshbench -gatehouse /tmp/gatehouse-bench "$@"
