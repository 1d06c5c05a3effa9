// Package e2e holds Gatehouse's end-to-end tests: the real gateway (started
// through internal/app, as `gatehouse serve` does), real OpenSSH clients
// (ssh, scp, sftp, rsync) and real sshd targets on loopback, a real SQLite
// file. It has no non-test code.
package e2e
