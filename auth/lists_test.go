package auth

import (
	"context"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestUserCertificates lists exactly the user's own user certificates,
// newest first, with the serial the certificate carries (the database keeps
// it as int64 bits; the page must show the uint64 that ssh-keygen -L shows).
func TestUserCertificates(t *testing.T) {
	a, _ := newAuthority(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { return now }
	var issued []*ssh.Certificate
	for i := 0; i < 3; i++ {
		c, err := a.IssueUserCert(ctx, UserCertRequest{Identity: Identity{User: "alice"}, PublicKey: newKey(t), TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, c)
		now = now.Add(time.Minute)
	}
	if _, err := a.IssueUserCert(ctx, UserCertRequest{Identity: Identity{User: "bob"}, PublicKey: newKey(t), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	got, err := a.UserCertificates(ctx, "alice", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d certificates, want the 2 newest: %+v", len(got), got)
	}
	for i, c := range []*ssh.Certificate{issued[2], issued[1]} {
		want := IssuedCert{Serial: c.Serial, KeyFingerprint: ssh.FingerprintSHA256(c.Key),
			ValidBefore: time.Unix(int64(c.ValidBefore), 0).UTC()}
		if got[i] != want {
			t.Fatalf("certificate %d = %+v, want %+v", i, got[i], want)
		}
	}
	if got, err := a.UserCertificates(ctx, "carol", 10); err != nil || len(got) != 0 {
		t.Fatalf("a user without certificates: %+v %v", got, err)
	}
}

// TestUsers lists every bound user with their identity and TOTP state.
func TestUsers(t *testing.T) {
	e := newTOTPEnv(t)
	ctx := context.Background()
	if err := e.t.BindUser(ctx, Identity{User: "bob", Issuer: "iss", Subject: "sub-2"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		e.t.Verify(ctx, "alice", "000000")
	}
	got, err := e.t.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []UserInfo{
		{Name: "alice", Issuer: "iss", Subject: "sub-1", Enrolled: true, TOTPLockedUntil: e.now.Add(15 * time.Minute)},
		{Name: "bob", Issuer: "iss", Subject: "sub-2"},
	}
	if len(got) != len(want) {
		t.Fatalf("users %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("user %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
