//go:build cgo

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
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

	// Rotation on the token: a next key generated there, trusted by the
	// target next to the old one, signing after the switch.
	ctx := context.Background()
	next, err := a.Rotate(ctx, "session", 0)
	if err != nil {
		t.Fatal(err)
	}
	trusted := filepath.Join(w.sshd.Dir, "gatehouse_session_ca.pub")
	os.WriteFile(trusted, append(ssh.MarshalAuthorizedKey(a.SessionCAPublicKey()), ssh.MarshalAuthorizedKey(next.Public)...), 0o644)
	waitFor(t, "the switch to the token's next session CA key", func() bool {
		return string(a.SessionCAPublicKey().Marshal()) == string(next.Public.Marshal())
	})
	if r := alice.run("ssh", "db-1", "echo rotated"); r.code != 0 || r.stdout != "rotated\n" {
		t.Fatalf("session after rotating the token key: %s", r)
	}
	if !strings.Contains(w.sshd.Log(), "signed by ECDSA CA "+next.KeyID) {
		t.Fatalf("sshd did not see the new token key %s:\n%s", next.KeyID, w.sshd.Log())
	}
	if _, err := a.Retire(ctx, "session"); err != nil {
		t.Fatal(err)
	}
	keys, _ := a.CAKeys(ctx, "session")
	if len(keys) != 2 || keys[0].State != auth.KeyRetired || keys[1].State != auth.KeyActive {
		t.Fatalf("session CA keys after retiring: %+v", keys)
	}
}
