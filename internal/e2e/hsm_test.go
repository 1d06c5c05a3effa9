//go:build cgo

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestCAKeysInSoftHSM runs the gateway with its three CAs on a SoftHSM2
// token: the user certificate, the host certificate (ProxyJump) and the
// per-session certificate a real sshd accepts are all signed on the token.
func TestCAKeysInSoftHSM(t *testing.T) {
	h := testenv.StartSoftHSM(t)
	w := newWorldWith(t, "", fmt.Sprintf("ca:\n  pkcs11: {module: %q, token_label: %q, pin_file: %q}\n", h.Module, h.TokenLabel, h.PinFile))
	a := w.app.Authority
	for name, k := range map[string]ssh.PublicKey{"user": a.UserCAPublicKey(), "session": a.SessionCAPublicKey(), "host": a.HostCAPublicKey()} {
		if k.Type() != ssh.KeyAlgoECDSA256 {
			t.Fatalf("%s CA is %s, want the token's ECDSA P-256 key", name, k.Type())
		}
	}
	alice := w.newUser("alice", time.Hour) // signed by the user CA on the token
	if r := alice.run("ssh", "db-1", "echo via-hsm"); r.code != 0 || r.stdout != "via-hsm\n" {
		t.Fatalf("session through a gateway whose CAs are on the token: %s", r)
	}
	// sshd names the CA that signed the accepted per-session certificate.
	want := "signed by ECDSA CA " + ssh.FingerprintSHA256(a.SessionCAPublicKey())
	waitFor(t, "sshd to log the session certificate from the token's CA", func() bool {
		return strings.Contains(w.sshd.Log(), "Accepted certificate ID \"gatehouse:alice session:") && strings.Contains(w.sshd.Log(), want)
	})
}
