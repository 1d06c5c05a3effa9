//go:build cgo

package hsm

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/ThalesGroup/crypto11"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

func TestTokenKeysSignAndStayOnTheToken(t *testing.T) {
	h := testenv.StartSoftHSM(t)
	if _, err := Open(Config{Module: h.Module, TokenLabel: h.TokenLabel, Pin: "0000"}); err == nil {
		t.Fatal("wrong PIN accepted")
	}
	tok, err := Open(Config{Module: h.Module, TokenLabel: h.TokenLabel, Pin: h.Pin})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if _, err := tok.Signer(KeyLabel("session"), false); err == nil || err.Error() != "hsm: no key gatehouse-session-ca on the token" {
		t.Fatalf("missing key without create: %v", err)
	}
	s1, err := tok.Signer(KeyLabel("session"), true)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := tok.Signer(KeyLabel("session"), false)
	if err != nil || !bytes.Equal(s1.PublicKey().Marshal(), s2.PublicKey().Marshal()) {
		t.Fatalf("the key is not found again: %v", err)
	}
	if s1.PublicKey().Type() != ssh.KeyAlgoECDSA256 {
		t.Fatalf("key type %s", s1.PublicKey().Type())
	}
	data := []byte("certificate to sign")
	sig, err := s1.Sign(rand.Reader, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.PublicKey().Verify(data, sig); err != nil {
		t.Fatalf("token signature does not verify: %v", err)
	}

	// An attacker holding the PIN still cannot read the private key out.
	k, err := tok.ctx.FindKeyPair(nil, []byte(KeyLabel("session")))
	if err != nil || k == nil {
		t.Fatal(err)
	}
	attrs, err := tok.ctx.GetAttributes(k, []crypto11.AttributeType{crypto11.CkaSensitive, crypto11.CkaExtractable})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(attrs[crypto11.CkaSensitive].Value, []byte{1}) || !bytes.Equal(attrs[crypto11.CkaExtractable].Value, []byte{0}) {
		t.Fatalf("private key attributes: sensitive %v extractable %v", attrs[crypto11.CkaSensitive].Value, attrs[crypto11.CkaExtractable].Value)
	}
	if v, err := tok.ctx.GetAttribute(k, crypto11.CkaValue); err == nil && len(v.Value) > 0 {
		t.Fatalf("the private key value was read from the token (%d bytes)", len(v.Value))
	}
}

// TestWrapKeyStaysOnTheToken checks the master-key wrapping key: it seals and
// opens on the token, is sensitive and not extractable, and a different
// token's key of the same label cannot open what it sealed.
func TestWrapKeyStaysOnTheToken(t *testing.T) {
	h := testenv.StartSoftHSM(t)
	tok, err := Open(Config{Module: h.Module, TokenLabel: h.TokenLabel, Pin: h.Pin})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if _, err := tok.WrapAEAD(MasterWrapLabel, false); err == nil {
		t.Fatal("a missing wrapping key was found without create")
	}
	a, err := tok.WrapAEAD(MasterWrapLabel, true)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, a.NonceSize())
	rand.Read(nonce)
	secret := []byte("0123456789abcdef0123456789abcdef")
	sealed := a.Seal(nil, nonce, secret, []byte("ad"))
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed text contains the plaintext")
	}
	again, err := tok.WrapAEAD(MasterWrapLabel, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open(nil, nonce, sealed, []byte("ad")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open on the same token: %q %v", got, err)
	}
	if _, err := again.Open(nil, nonce, sealed, []byte("other")); err == nil {
		t.Fatal("opened with the wrong additional data")
	}
	k, err := tok.ctx.FindKey(nil, []byte(MasterWrapLabel))
	if err != nil || k == nil {
		t.Fatal(err)
	}
	attrs, err := tok.ctx.GetAttributes(k, []crypto11.AttributeType{crypto11.CkaSensitive, crypto11.CkaExtractable})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(attrs[crypto11.CkaSensitive].Value, []byte{1}) || !bytes.Equal(attrs[crypto11.CkaExtractable].Value, []byte{0}) {
		t.Fatalf("wrapping key attributes: sensitive %v extractable %v", attrs[crypto11.CkaSensitive].Value, attrs[crypto11.CkaExtractable].Value)
	}
}
