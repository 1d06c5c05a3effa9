package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestUserCARotation: a person's certificate from the previous user CA keeps
// working after the switch until that key is retired, then it is refused as
// foreign; the switch happens at the end of the overlap, not before.
func TestUserCARotation(t *testing.T) {
	db, sec := newSecretStore(t)
	ctx := context.Background()
	now := time.Now()
	a, err := LoadAuthority(ctx, sec, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	a.Now = func() time.Time { return now }
	if err := a.EnableRotation(ctx, SealedKeys{Secrets: sec}); err != nil {
		t.Fatal(err)
	}
	oldCA := a.UserCAPublicKey()
	oldCert, err := a.IssueUserCert(ctx, UserCertRequest{Identity: Identity{User: "alice"}, PublicKey: newKey(t), TTL: 8 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	next, err := a.Rotate(ctx, "user", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Rotate(ctx, "user", time.Hour); !errors.Is(err, ErrRotationPending) {
		t.Fatalf("second rotation during the overlap: %v", err)
	}
	if sw, _ := a.ApplyRotations(ctx); len(sw) != 0 || !keysEqual(a.UserCAPublicKey(), oldCA) {
		t.Fatalf("switched before the overlap ended: %v", sw)
	}
	now = now.Add(time.Hour + time.Second)
	if sw, err := a.ApplyRotations(ctx); err != nil || len(sw) != 1 || !keysEqual(a.UserCAPublicKey(), next.Public) {
		t.Fatalf("switch after the overlap: %v %v", sw, err)
	}
	newCert, err := a.IssueUserCert(ctx, UserCertRequest{Identity: Identity{User: "bob"}, PublicKey: newKey(t), TTL: time.Hour})
	if err != nil || !keysEqual(newCert.SignatureKey, next.Public) {
		t.Fatalf("new certificates are not signed by the new key: %v", err)
	}
	for _, c := range []*ssh.Certificate{oldCert, newCert} {
		if _, _, err := a.CheckUserCert(c, nil); err != nil {
			t.Fatalf("certificate of %s refused during the overlap: %v", c.ValidPrincipals[0], err)
		}
	}
	if _, err := a.Retire(ctx, "user"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplyRotations(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.CheckUserCert(oldCert, nil); !errors.Is(err, ErrForeignCA) {
		t.Fatalf("certificate from the retired user CA: %v, want %v", err, ErrForeignCA)
	}
	// A restart loads the active key, and the retired one stays retired.
	b, err := LoadAuthority(ctx, sec, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	b.Now = a.Now
	if err := b.EnableRotation(ctx, SealedKeys{Secrets: sec}); err != nil {
		t.Fatal(err)
	}
	if !keysEqual(b.UserCAPublicKey(), next.Public) {
		t.Fatal("after a restart the gateway signs with the old user CA")
	}
	if _, _, err := b.CheckUserCert(oldCert, nil); !errors.Is(err, ErrForeignCA) {
		t.Fatalf("after a restart the retired user CA is accepted: %v", err)
	}
}

func keysEqual(a, b ssh.PublicKey) bool { return string(a.Marshal()) == string(b.Marshal()) }
