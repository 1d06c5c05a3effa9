//go:build cgo

package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/hsm"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// hsmEnv opens a fresh install in dir (a SQLite file) whose configuration
// has ca.pkcs11 pointing at h with token label label ("" for none).
func hsmEnv(t *testing.T, dir string, h *testenv.SoftHSM, label string) *Env {
	t.Helper()
	text := fmt.Sprintf("data_dir: %s\nssh:\n  listen: \"127.0.0.1:0\"\n", dir)
	if label != "" {
		text += fmt.Sprintf("ca:\n  pkcs11: {module: %q, token_label: %q, pin_file: %q}\n", h.Module, label, h.PinFile)
	}
	cfg, err := config.Parse("gatehouse.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	env, err := OpenEnv(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return env
}

// sealedCARows lists the rows of sealed CA private keys in env's database.
func sealedCARows(t *testing.T, env *Env) []string {
	t.Helper()
	rows, err := env.DB.QueryContext(context.Background(), `SELECT name FROM secrets WHERE name LIKE ? ORDER BY name`, "ca/%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// tokenPublicKeys reads the CA public keys straight from the token, through
// a session of its own.
func tokenPublicKeys(t *testing.T, h *testenv.SoftHSM) map[string]ssh.PublicKey {
	t.Helper()
	tok, err := hsm.Open(hsm.Config{Module: h.Module, TokenLabel: h.TokenLabel, Pin: h.Pin})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	out := map[string]ssh.PublicKey{}
	for _, ca := range []string{"user", "session", "host"} {
		s, err := tok.Signer(hsm.KeyLabel(ca), false)
		if err != nil {
			t.Fatal(err)
		}
		out[ca] = s.PublicKey()
	}
	return out
}

func sameKey(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

// signedBy checks that cert's signature verifies under the CA key ca (read
// from the token) and not under other (a software key), when set.
func signedBy(t *testing.T, what string, cert *ssh.Certificate, ca, other ssh.PublicKey, principal string) {
	t.Helper()
	if !sameKey(cert.SignatureKey, ca) {
		t.Fatalf("%s signed by %s, want the token's %s", what, ssh.FingerprintSHA256(cert.SignatureKey), ssh.FingerprintSHA256(ca))
	}
	// CheckCert verifies the signature with cert.SignatureKey.
	check := &ssh.CertChecker{SupportedCriticalOptions: []string{"source-address", "force-command"}}
	if err := check.CheckCert(principal, cert); err != nil {
		t.Fatalf("%s does not verify against the token's key: %v", what, err)
	}
	if other != nil {
		forged := *cert
		forged.SignatureKey = other
		if err := check.CheckCert(principal, &forged); err == nil {
			t.Fatalf("%s verifies against a software key", what)
		}
	}
}

// TestTokenCAsCreateNoSoftwareKeys: with ca.pkcs11 a fresh install gets its
// three CA keys on the token and no sealed software CA key at all (only the
// gateway's own host key is sealed); user, per-session and host
// certificates verify against the public keys read from the token itself.
// issuedByToken issues alice a user certificate for pub and mints a session
// certificate, and checks that the token's user and session CAs signed them
// (and not softUser / softSession, when given).
func issuedByToken(ctx context.Context, t *testing.T, a *auth.Authority, pub ssh.PublicKey, tk map[string]ssh.PublicKey, softUser, softSession ssh.PublicKey) {
	t.Helper()
	uc, err := a.IssueUserCert(ctx, auth.UserCertRequest{Identity: auth.Identity{User: "alice"}, PublicKey: pub, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	signedBy(t, "user certificate", uc, tk["user"], softUser, "alice")
	sc, err := a.MintSessionCert(ctx, auth.SessionCertRequest{User: "alice", SessionID: "s1", Login: "root",
		SourceAddress: "127.0.0.1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	signedBy(t, "session certificate", sc.Cert, tk["session"], softSession, "root")
}

func TestTokenCAsCreateNoSoftwareKeys(t *testing.T) {
	ctx := context.Background()
	h := testenv.StartSoftHSM(t)
	env := hsmEnv(t, t.TempDir(), h, h.TokenLabel)
	a, closeCA, err := LoadAuthority(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	defer closeCA()
	if rows := sealedCARows(t, env); len(rows) != 0 {
		t.Fatalf("software CA keys sealed in the database with ca.pkcs11: %v", rows)
	}
	if _, err := env.Secrets.Get(ctx, "gateway/host-key"); err != nil {
		t.Fatalf("the gateway's own host key: %v", err)
	}
	tk := tokenPublicKeys(t, h)
	for ca, k := range map[string]ssh.PublicKey{"user": a.UserCAPublicKey(), "session": a.SessionCAPublicKey(), "host": a.HostCAPublicKey()} {
		if !sameKey(k, tk[ca]) {
			t.Fatalf("the %s CA is not the token's key", ca)
		}
	}
	userKey, _, _ := ed25519.GenerateKey(rand.Reader)
	pub, _ := ssh.NewPublicKey(userKey)
	issuedByToken(ctx, t, a, pub, tk, nil, nil)
	hs, err := a.HostCertSigner(ctx, []string{"gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	hc, ok := hs.PublicKey().(*ssh.Certificate)
	if !ok {
		t.Fatalf("host signer carries no certificate: %T", hs.PublicKey())
	}
	signedBy(t, "host certificate", hc, tk["host"], nil, "gw.example")
	if rows := sealedCARows(t, env); len(rows) != 0 {
		t.Fatalf("software CA keys sealed after signing: %v", rows)
	}
}

// TestTokenCAsIgnoreEarlierSoftwareKeys: an install that had sealed
// software CA keys and then configures ca.pkcs11 signs every certificate on
// the token; the old sealed keys sign nothing (a certificate does not verify
// under them) and are reported for the operator to untrust.
func TestTokenCAsIgnoreEarlierSoftwareKeys(t *testing.T) {
	ctx := context.Background()
	h := testenv.StartSoftHSM(t)
	dir := t.TempDir()
	plain := hsmEnv(t, dir, h, "")
	soft, closeSoft, err := LoadAuthority(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	closeSoft()
	softUser, softSession := soft.UserCAPublicKey(), soft.SessionCAPublicKey()
	userKey, _, _ := ed25519.GenerateKey(rand.Reader)
	pub, _ := ssh.NewPublicKey(userKey)
	oldCert := softCert(t, soft, pub)
	plain.Close()

	env := hsmEnv(t, dir, h, h.TokenLabel)
	a, closeCA, err := LoadAuthority(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	defer closeCA()
	tk := tokenPublicKeys(t, h)
	issuedByToken(ctx, t, a, pub, tk, softUser, softSession)
	// The gateway does not accept a certificate from the old software user CA.
	if _, _, err := a.CheckUserCert(oldCert, nil); !errors.Is(err, auth.ErrForeignCA) {
		t.Fatalf("a certificate of the earlier software user CA with ca.pkcs11: %v, want %v", err, auth.ErrForeignCA)
	}
	left, err := auth.SealedCAKeys(ctx, env.Secrets)
	if err != nil || len(left) != 3 {
		t.Fatalf("sealed CA keys left from before: %v %v", left, err)
	}
}

// softCert is a user certificate for pub issued by the software Authority a.
func softCert(t *testing.T, a *auth.Authority, pub ssh.PublicKey) ssh.PublicKey {
	t.Helper()
	c, err := a.IssueUserCert(context.Background(), auth.UserCertRequest{Identity: auth.Identity{User: "alice"}, PublicKey: pub, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTokenUnavailableFailsClosed: with ca.pkcs11 configured and the token
// not there (another label, as when the HSM is unplugged or its slot
// renamed) the Authority does not load, whether or not software CA keys
// exist, and none is created.
func TestTokenUnavailableFailsClosed(t *testing.T) {
	ctx := context.Background()
	h := testenv.StartSoftHSM(t)
	fresh := hsmEnv(t, t.TempDir(), h, "no-such-token")
	if a, _, err := LoadAuthority(ctx, fresh); err == nil {
		t.Fatalf("loaded without the token: user CA %s", ssh.FingerprintSHA256(a.UserCAPublicKey()))
	}
	if rows := sealedCARows(t, fresh); len(rows) != 0 {
		t.Fatalf("software CA keys created when the token was missing: %v", rows)
	}

	dir := t.TempDir()
	plain := hsmEnv(t, dir, h, "")
	if _, closeSoft, err := LoadAuthority(ctx, plain); err != nil {
		t.Fatal(err)
	} else {
		closeSoft()
	}
	plain.Close()
	env := hsmEnv(t, dir, h, "no-such-token")
	if _, _, err := LoadAuthority(ctx, env); err == nil {
		t.Fatal("fell back to the sealed software CA keys without the token")
	}
}
