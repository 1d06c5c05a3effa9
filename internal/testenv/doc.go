// Package testenv starts the real components Gatehouse's tests run against,
// never mocks of them: OpenSSH sshd processes on loopback trusting a test
// user CA (sshd.go), the OpenSSH client programs ssh, scp, sftp and rsync
// with a key pair and known_hosts of their own and no ssh-agent (client.go),
// programs in a real pty (pty.go), headless Chromium (chrome.go), a Docker
// Engine with the scratch busybox test image (docker.go) and an OpenID
// Provider (oidc.go). It is imported only by tests.
//
// A missing component fails the test when CI=true (naming the install step)
// and skips it otherwise (Require): CI must never pass by skipping.
// .ci/test.sh installs and starts all of them.
//
// Everything a helper starts is stopped by t.Cleanup. Waits (Term.Expect,
// the sshd start-up) are bounded waits for an event, not timing assertions.
package testenv
