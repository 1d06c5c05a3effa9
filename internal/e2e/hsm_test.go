//go:build cgo

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/hsm"
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
	// No software CA key was made: the database seals only the gateway's
	// own host key, and the CAs are the keys read from the token itself.
	rows, err := w.app.Env.DB.QueryContext(context.Background(), `SELECT name FROM secrets WHERE name LIKE ?`, "ca/%")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		rows.Scan(&name)
		t.Errorf("software CA key %s sealed in the database with ca.pkcs11", name)
	}
	rows.Close()
	tok, err := hsm.Open(hsm.Config{Module: h.Module, TokenLabel: h.TokenLabel, Pin: h.Pin})
	if err != nil {
		t.Fatal(err)
	}
	onToken := map[string]ssh.PublicKey{}
	for _, ca := range []string{"user", "session", "host"} {
		s, err := tok.Signer(hsm.KeyLabel(ca), false)
		if err != nil {
			t.Fatal(err)
		}
		onToken[ca] = s.PublicKey()
	}
	tok.Close()
	alice := w.newUser("alice", time.Hour) // signed by the user CA on the token
	if r := alice.run("ssh", "db-1", "echo via-hsm"); r.code != 0 || r.stdout != "via-hsm\n" {
		t.Fatalf("session through a gateway whose CAs are on the token: %s", r)
	}
	// The user certificate ssh presented verifies under the token's key.
	certBytes, err := os.ReadFile(alice.key + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certBytes)
	if err != nil {
		t.Fatal(err)
	}
	uc, ok := pub.(*ssh.Certificate)
	if !ok || string(uc.SignatureKey.Marshal()) != string(onToken["user"].Marshal()) {
		t.Fatalf("alice's certificate is not signed by the token's user CA key")
	}
	if err := (&ssh.CertChecker{}).CheckCert("alice", uc); err != nil {
		t.Fatalf("alice's certificate does not verify under the token's key: %v", err)
	}
	for name, k := range map[string]ssh.PublicKey{"session": a.SessionCAPublicKey(), "host": a.HostCAPublicKey()} {
		if string(k.Marshal()) != string(onToken[name].Marshal()) {
			t.Fatalf("the gateway's %s CA is not the token's key", name)
		}
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

// TestMasterKeyWrappedByToken keeps the master key file wrapped by an AES key
// on the token: the gateway and the CLI unwrap it through the token, and the
// file and database without that token open nothing. An install with a plain
// key is converted in place with `gatehouse ca wrap-master-key`.
func TestMasterKeyWrappedByToken(t *testing.T) {
	bin := gatehouseBinary(t)
	h := testenv.StartSoftHSM(t)
	pkcs11 := fmt.Sprintf("ca:\n  pkcs11: {module: %q, token_label: %q, pin_file: %q, wrap_master_key: true}\n", h.Module, h.TokenLabel, h.PinFile)
	w := newWorldWith(t, "", pkcs11)
	keyFile := filepath.Join(w.dir, "data", "master.key")
	if b, _ := os.ReadFile(keyFile); !strings.HasPrefix(string(b), "gatehouse-wrapped-v1:") {
		t.Fatalf("master key file is not wrapped: %q", b)
	}
	alice := w.newUser("alice", time.Hour)
	if r := alice.run("ssh", "db-1", "echo wrapped"); r.code != 0 || r.stdout != "wrapped\n" {
		t.Fatalf("session with a wrapped master key: %s", r)
	}
	w.cli(t, bin, "audit", "verify") // another process unwraps through the token

	// The attacker's copy: the same files in front of another token.
	testenv.StartSoftHSM(t) // a fresh token with the same label and PIN
	out, err := exec.Command(bin, "audit", "verify", "--config", w.configFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "hsm: no key gatehouse-master-wrap on the token") {
		t.Fatalf("the wrapped key opened without its token: %v\n%s", err, out)
	}
}

// TestWrapMasterKeyConvertsAPlainInstall wraps the plain key of an existing
// install in place; afterwards the plain reading of the file fails and the
// configuration with wrap_master_key works.
func TestWrapMasterKeyConvertsAPlainInstall(t *testing.T) {
	bin := gatehouseBinary(t)
	w := newWorld(t, "")
	h := testenv.StartSoftHSM(t)
	orig, _ := os.ReadFile(w.configFile)
	wrapped := filepath.Join(w.dir, "wrapped.yaml")
	os.WriteFile(wrapped, append(orig, fmt.Sprintf("ca:\n  pkcs11: {module: %q, token_label: %q, pin_file: %q, wrap_master_key: true}\n",
		h.Module, h.TokenLabel, h.PinFile)...), 0o600)
	if out, err := exec.Command(bin, "audit", "verify", "--config", wrapped).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "is not wrapped; wrap it once with: gatehouse ca wrap-master-key") {
		t.Fatalf("a plain key under wrap_master_key: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "ca", "wrap-master-key", "--config", wrapped).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "wrapped ") {
		t.Fatalf("wrap-master-key: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "audit", "verify", "--config", wrapped).CombinedOutput(); err != nil {
		t.Fatalf("verify with the wrapped key: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "audit", "verify", "--config", w.configFile).CombinedOutput(); err == nil {
		t.Fatalf("the wrapped file still reads as a plain key:\n%s", out)
	}
}
