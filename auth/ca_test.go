package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
)

func newAuthority(t *testing.T) (*Authority, *store.DB) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, err := secrets.NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	a, err := LoadAuthority(context.Background(), secrets.NewStore(db.DB, kr), db.DB)
	if err != nil {
		t.Fatal(err)
	}
	return a, db
}

func newKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newSecretStore opens a database in a temporary directory and a secret
// store on it with a throwaway key; the database closes with the test.
func newSecretStore(t *testing.T) (*store.DB, *secrets.Store) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	return db, secrets.NewStore(db.DB, kr)
}

var loopback = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func TestAuthorityPersistsKeys(t *testing.T) {
	db, sec := newSecretStore(t)
	a1, err := LoadAuthority(context.Background(), sec, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := LoadAuthority(context.Background(), sec, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	if string(a1.UserCAPublicKey().Marshal()) != string(a2.UserCAPublicKey().Marshal()) {
		t.Fatal("user CA changed between loads")
	}
	if string(a1.SessionCAPublicKey().Marshal()) != string(a2.SessionCAPublicKey().Marshal()) {
		t.Fatal("session CA changed between loads")
	}
	keys := map[string]string{}
	for name, k := range map[string]ssh.PublicKey{"user": a1.UserCAPublicKey(), "session": a1.SessionCAPublicKey(),
		"host": a1.HostCAPublicKey(), "host key": a1.HostKey().PublicKey()} {
		if other, dup := keys[string(k.Marshal())]; dup {
			t.Fatalf("%s CA and %s CA are the same key", name, other)
		}
		keys[string(k.Marshal())] = name
	}
	if a1.SessionCAMigrated() || a2.SessionCAMigrated() {
		t.Fatal("a fresh install reported a session CA migration")
	}
	var sealed []byte
	if err := db.QueryRow(`SELECT value FROM secrets WHERE name = ?`, secretUserCA).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := ssh.ParseRawPrivateKey(sealed); err == nil {
		t.Fatal("CA key stored in clear")
	}
}

// TestSessionCAMigration: an install from before the session CA (user CA
// stored, no session CA) gets one on the next load, which reports it once.
func TestSessionCAMigration(t *testing.T) {
	a, db := newAuthority(t)
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	sec := secrets.NewStore(db.DB, kr)
	if _, err := db.Exec(`DELETE FROM secrets WHERE name = ?`, secretSessionCA); err != nil {
		t.Fatal(err)
	}
	a2, err := LoadAuthority(context.Background(), sec, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	if !a2.SessionCAMigrated() {
		t.Fatal("existing install got a session CA without reporting it")
	}
	if string(a2.UserCAPublicKey().Marshal()) != string(a.UserCAPublicKey().Marshal()) {
		t.Fatal("migration changed the user CA")
	}
	if string(a2.SessionCAPublicKey().Marshal()) == string(a2.UserCAPublicKey().Marshal()) {
		t.Fatal("migrated session CA equals the user CA")
	}
	a3, err := LoadAuthority(context.Background(), sec, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	if a3.SessionCAMigrated() || string(a3.SessionCAPublicKey().Marshal()) != string(a2.SessionCAPublicKey().Marshal()) {
		t.Fatal("second load after migration: reported again or created another session CA")
	}
}

func TestCheckUserCert(t *testing.T) {
	a, db := newAuthority(t)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { return now }
	ctx := context.Background()
	issue := func(user string, ttl time.Duration) *ssh.Certificate {
		c, err := a.IssueUserCert(ctx, UserCertRequest{Identity: Identity{User: user, Groups: []string{"dba", "ops"}}, PublicKey: newKey(t), TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := issue("alice", 8*time.Hour)
	if good.KeyId != "gatehouse:alice" || len(good.ValidPrincipals) != 1 || good.ValidPrincipals[0] != "alice" {
		t.Fatalf("cert identity: KeyId %q principals %v", good.KeyId, good.ValidPrincipals)
	}
	if string(good.SignatureKey.Marshal()) != string(a.UserCAPublicKey().Marshal()) {
		t.Fatal("user certificate not signed by the user CA")
	}
	var n int
	db.QueryRow(`SELECT COUNT(*) FROM certificates WHERE serial = ? AND kind = 'user'`, int64(good.Serial)).Scan(&n)
	if n != 1 {
		t.Fatalf("serial %d not recorded", good.Serial)
	}

	// A certificate from another CA.
	other, _ := newAuthority(t)
	other.Now = a.Now
	foreign, _ := other.IssueUserCert(ctx, UserCertRequest{Identity: Identity{User: "alice"}, PublicKey: newKey(t), TTL: time.Hour})
	// A host certificate signed by the *user* CA.
	hostCert := &ssh.Certificate{Key: newKey(t), CertType: ssh.HostCert, ValidPrincipals: []string{"alice"},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix())}
	hostCert.SignCert(rand.Reader, a.UserCASigner())
	// Empty principals.
	noPrincipal := &ssh.Certificate{Key: newKey(t), CertType: ssh.UserCert,
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix())}
	noPrincipal.SignCert(rand.Reader, a.UserCASigner())
	// Source-address restricted elsewhere.
	pinned := &ssh.Certificate{Key: newKey(t), CertType: ssh.UserCert, ValidPrincipals: []string{"bob"},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{CriticalOptions: map[string]string{"source-address": "10.9.9.9/32"}}}
	pinned.SignCert(rand.Reader, a.UserCASigner())
	// force-command is not supported by the gateway: refuse rather than ignore.
	forced := &ssh.Certificate{Key: newKey(t), CertType: ssh.UserCert, ValidPrincipals: []string{"bob"},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{CriticalOptions: map[string]string{"force-command": "true"}}}
	forced.SignCert(rand.Reader, a.UserCASigner())
	// Signed by the real user CA, but never expiring, or valid for 30 days
	// (certificates.max_user_ttl is 24h by default).
	forever := &ssh.Certificate{Key: newKey(t), CertType: ssh.UserCert, ValidPrincipals: []string{"alice"},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: ssh.CertTimeInfinity}
	forever.SignCert(rand.Reader, a.UserCASigner())
	month := &ssh.Certificate{Key: newKey(t), CertType: ssh.UserCert, ValidPrincipals: []string{"alice"},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(30 * 24 * time.Hour).Unix())}
	month.SignCert(rand.Reader, a.UserCASigner())
	// Exactly the maximum, as IssueUserCert makes it (back-dated a minute).
	longest, err := a.IssueUserCert(ctx, UserCertRequest{Identity: Identity{User: "alice", Groups: []string{"dba", "ops"}}, PublicKey: newKey(t), TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// A per-session certificate (session CA) naming a user, as a target
	// would hold it: never a person's credential at the gateway.
	sess, err := a.MintSessionCert(ctx, SessionCertRequest{User: "alice", SessionID: "s0", Login: "alice",
		SourceAddress: "127.0.0.1", TTL: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		key     ssh.PublicKey
		at      time.Time
		wantErr error
	}{
		{"valid", good, now, nil},
		{"plain key", newKey(t), now, ErrNotCertificate},
		{"expired", good, now.Add(8*time.Hour + time.Second), ErrCertExpired},
		{"not yet valid", good, now.Add(-2 * time.Minute), ErrCertNotYet},
		{"foreign CA", foreign, now, ErrForeignCA},
		{"host cert as user cert", hostCert, now, ErrNotUserCert},
		{"empty principals", noPrincipal, now, ErrCertPrincipal},
		{"source address", pinned, now, ErrCertSource},
		{"unsupported critical option", forced, now, ErrCertOptions},
		{"session CA certificate", sess.Cert, now, ErrForeignCA},
		{"no expiry", forever, now, ErrCertNoExpiry},
		{"longer than max_user_ttl", month, now, ErrCertTooLong},
		{"exactly max_user_ttl", longest, now, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = tt.at
			id, _, err := a.CheckUserCert(tt.key, loopback)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckUserCert error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (id.User != "alice" || len(id.Groups) != 2 || id.Groups[1] != "ops") {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

func TestMintSessionCert(t *testing.T) {
	a, db := newAuthority(t)
	sc, err := a.MintSessionCert(context.Background(), SessionCertRequest{User: "alice", SessionID: "s1", Login: "root",
		SourceAddress: "127.0.0.1", TTL: 2 * time.Minute, PTY: true})
	if err != nil {
		t.Fatal(err)
	}
	c := sc.Cert
	if string(c.SignatureKey.Marshal()) != string(a.SessionCAPublicKey().Marshal()) {
		t.Fatal("per-session certificate not signed by the session CA")
	}
	if string(c.SignatureKey.Marshal()) == string(a.UserCAPublicKey().Marshal()) {
		t.Fatal("per-session certificate signed by the user CA")
	}
	if len(c.ValidPrincipals) != 1 || c.ValidPrincipals[0] != "root" {
		t.Fatalf("principals %v", c.ValidPrincipals)
	}
	if c.CriticalOptions["source-address"] != "127.0.0.1" {
		t.Fatalf("source-address %q", c.CriticalOptions["source-address"])
	}
	if _, ok := c.Extensions["permit-pty"]; !ok {
		t.Fatal("permit-pty missing")
	}
	if _, ok := c.Extensions["permit-port-forwarding"]; ok {
		t.Fatal("port forwarding granted without being asked")
	}
	if life := time.Duration(c.ValidBefore-c.ValidAfter) * time.Second; life > 4*time.Minute {
		t.Fatalf("session cert lives %s", life)
	}
	var session string
	db.QueryRow(`SELECT session_id FROM certificates WHERE serial = ?`, int64(c.Serial)).Scan(&session)
	if session != "s1" {
		t.Fatalf("session cert serial not recorded with session id, got %q", session)
	}
}

func TestIssueUserCertRespectsMax(t *testing.T) {
	a, _ := newAuthority(t)
	a.MaxUserCertTTL = 2 * time.Hour
	_, err := a.IssueUserCert(context.Background(), UserCertRequest{Identity: Identity{User: "alice"}, PublicKey: newKey(t), TTL: 3 * time.Hour})
	if err == nil || err.Error() != "auth: certificate TTL 3h0m0s is longer than certificates.max_user_ttl 2h0m0s" {
		t.Fatalf("err = %v", err)
	}
	c, err := a.IssueUserCert(context.Background(), UserCertRequest{Identity: Identity{User: "alice"}, PublicKey: newKey(t), TTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.CheckUserCert(c, loopback); err != nil {
		t.Fatalf("a certificate of exactly the maximum is refused: %v", err)
	}
	a.MaxUserCertTTL = time.Hour // lowered after issue: the gateway refuses it
	if _, _, err := a.CheckUserCert(c, loopback); !errors.Is(err, ErrCertTooLong) {
		t.Fatalf("after lowering the maximum: %v", err)
	}
}

func TestMintSessionCertTTLBounds(t *testing.T) {
	a, _ := newAuthority(t)
	for _, ttl := range []time.Duration{0, -time.Minute, time.Hour} {
		_, err := a.MintSessionCert(context.Background(), SessionCertRequest{User: "alice", SessionID: "s1", Login: "root",
			SourceAddress: "127.0.0.1", TTL: ttl})
		if err == nil || !strings.Contains(err.Error(), "want more than 0 and at most 15m0s") {
			t.Errorf("TTL %s: err = %v", ttl, err)
		}
	}
}

// TestLoadAuthorityWithSignersNeedsAllThree: CA keys held outside the
// database are all or nothing; a missing one is an error, never a sealed
// key made in its place, and no sealed CA key is created either way.
func TestLoadAuthorityWithSignersNeedsAllThree(t *testing.T) {
	db, sec := newSecretStore(t)
	signer := func() ssh.Signer {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s, _ := ssh.NewSignerFromKey(priv)
		return s
	}
	ctx := context.Background()
	full := CASigners{User: signer(), Session: signer(), Host: signer()}
	for name, s := range map[string]CASigners{
		"no user":    {Session: full.Session, Host: full.Host},
		"no session": {User: full.User, Host: full.Host},
		"no host":    {User: full.User, Session: full.Session},
	} {
		if _, err := LoadAuthorityWithSigners(ctx, sec, db.DB, s, false); !errors.Is(err, ErrCASignersMissing) {
			t.Errorf("%s: %v, want %v", name, err, ErrCASignersMissing)
		}
	}
	a, err := LoadAuthorityWithSigners(ctx, sec, db.DB, full, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.UserCAPublicKey().Marshal(), full.User.PublicKey().Marshal()) ||
		!bytes.Equal(a.SessionCAPublicKey().Marshal(), full.Session.PublicKey().Marshal()) ||
		!bytes.Equal(a.HostCAPublicKey().Marshal(), full.Host.PublicKey().Marshal()) {
		t.Fatal("the Authority does not use the given CA keys")
	}
	if left, err := SealedCAKeys(ctx, sec); err != nil || len(left) != 0 {
		t.Fatalf("sealed CA keys created: %v %v", left, err)
	}
	if a.HostKey() == nil {
		t.Fatal("no gateway host key")
	}
}
