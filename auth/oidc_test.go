package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

const (
	testIssuer = "https://idp.example.test"
	testClient = "gatehouse"
)

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func signES256(t *testing.T, key *ecdsa.PrivateKey, header, claims map[string]any) string {
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	in := b64(hb) + "." + b64(cb)
	h := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + b64(sig)
}

func claimsFor(mod func(map[string]any)) map[string]any {
	c := map[string]any{"iss": testIssuer, "sub": "u-123", "aud": testClient, "exp": testNow.Add(time.Hour).Unix(),
		"iat": testNow.Unix(), "nonce": "n-1", "preferred_username": "alice", "groups": []string{"dba-team", "ops"}}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestVerifyIDToken(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v := oidc.NewVerifier(testIssuer, &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&key.PublicKey}},
		&oidc.Config{ClientID: testClient, SupportedSigningAlgs: SigningAlgs, Now: func() time.Time { return testNow }})
	es := map[string]any{"alg": "ES256", "typ": "JWT"}
	hs := func() string {
		hb, _ := json.Marshal(map[string]any{"alg": "HS256"})
		cb, _ := json.Marshal(claimsFor(nil))
		in := b64(hb) + "." + b64(cb)
		m := hmac.New(sha256.New, []byte("client-secret"))
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	none := func() string {
		hb, _ := json.Marshal(map[string]any{"alg": "none"})
		cb, _ := json.Marshal(claimsFor(nil))
		return b64(hb) + "." + b64(cb) + "."
	}
	tests := []struct {
		name    string
		token   string
		nonce   string
		wantErr error
	}{
		{"valid", signES256(t, key, es, claimsFor(nil)), "n-1", nil},
		{"nonce mismatch", signES256(t, key, es, claimsFor(nil)), "n-2", ErrNonceMismatch},
		{"no nonce in token", signES256(t, key, es, claimsFor(func(c map[string]any) { delete(c, "nonce") })), "n-1", ErrNonceMismatch},
		{"wrong audience", signES256(t, key, es, claimsFor(func(c map[string]any) { c["aud"] = "someone-else" })), "n-1", ErrBadIDToken},
		{"expired", signES256(t, key, es, claimsFor(func(c map[string]any) { c["exp"] = testNow.Add(-time.Minute).Unix() })), "n-1", ErrBadIDToken},
		{"unknown issuer", signES256(t, key, es, claimsFor(func(c map[string]any) { c["iss"] = "https://evil.example" })), "n-1", ErrBadIDToken},
		{"foreign key", signES256(t, other, es, claimsFor(nil)), "n-1", ErrBadIDToken},
		{"alg none", none(), "n-1", ErrBadIDToken},
		{"HS256 with the client secret", hs(), "n-1", ErrBadIDToken},
		{"several audiences, azp not us", signES256(t, key, es, claimsFor(func(c map[string]any) {
			c["aud"], c["azp"] = []string{testClient, "other"}, "other"
		})), "n-1", ErrBadIDToken},
		{"several audiences, azp us", signES256(t, key, es, claimsFor(func(c map[string]any) {
			c["aud"], c["azp"] = []string{testClient, "other"}, testClient
		})), "n-1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := verifyIDToken(context.Background(), v, testClient, tt.token, tt.nonce)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && claims["sub"] != "u-123" {
				t.Fatalf("claims %v", claims)
			}
		})
	}
}

func TestIdentityFromClaims(t *testing.T) {
	o := NewOIDC(OIDCConfig{Issuer: testIssuer, ClientID: testClient, GroupsClaim: "groups"})
	c := claimsFor(nil)
	c["groups"] = []any{"dba-team", "ops", "bad,group"}
	id, err := o.identity(c)
	if err != nil || id.User != "alice" || id.Subject != "u-123" || id.Issuer != testIssuer || strings.Join(id.Groups, "|") != "dba-team|ops" {
		t.Fatalf("identity %+v err %v", id, err)
	}
	c["preferred_username"] = "alice smith"
	if _, err := o.identity(c); err == nil {
		t.Fatal("a user name with a space was accepted")
	}
	delete(c, "preferred_username")
	if id, _ := o.identity(c); id.User != "u-123" {
		t.Fatalf("fallback to subject: %+v", id)
	}
}

func TestFinishRejectsStateMismatch(t *testing.T) {
	o := NewOIDC(OIDCConfig{Issuer: "http://127.0.0.1:1", ClientID: testClient})
	_, err := o.Finish(context.Background(), LoginRequest{State: "expected"}, "forged", "code")
	if !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("err = %v", err)
	}
}

func TestIdPDownIsAClearError(t *testing.T) {
	o := NewOIDC(OIDCConfig{Issuer: "http://127.0.0.1:1", ClientID: testClient})
	if _, err := o.Begin(context.Background()); !errors.Is(err, ErrIdPUnavailable) {
		t.Fatalf("err = %v", err)
	}
}
