// Package testenv starts the real components Gatehouse's tests run against:
// OpenSSH sshd processes on loopback (sshd.go), programs in a real pty
// (pty.go), headless Chromium (chrome.go), dockerd (docker.go) and an OpenID
// Provider (oidc.go). It is imported only by tests.
//
// A missing component fails the test when CI=true (naming the install step)
// and skips it otherwise: CI must never pass by skipping.
package testenv
