#!/usr/bin/env bash
# HA sizing for docs/ha.md: sessions per second on PostgreSQL with one and two
# instances, audit append rate on SQLite and PostgreSQL, recording upload
# throughput to versitygw, and the recovery time after kill -9 of one of two
# instances (the e2e test logs it). Needs root, openssh-server,
# postgresql-15 and versitygw (see the README's test command).
# Usage: bash bench/ha.sh
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./bench/ -run '^$' -bench 'HASessionRate' -benchtime 400x -count 1 -timeout 30m
go test ./bench/ -run '^$' -bench 'AuditAppendEngines' -benchtime 20000x -count 1 -timeout 30m
go test ./recorder/ -run '^$' -bench 'S3RecordingOutput' -benchtime 2000x -count 1
GATEHOUSE_TEST_DB=postgres go test ./internal/e2e/ -run '^TestInstancesKill9OneOfTwo$' -count 1 -v -timeout 15m |
  grep -E 'recovery:|^(ok|FAIL|---)'
