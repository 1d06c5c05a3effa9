package app

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/hsm"
	"golang.org/x/crypto/ssh"
)

// LoadAuthority loads the CAs of env, with their keys on the PKCS#11 token
// when ca.pkcs11 is configured (generated there on first use). close
// releases the token; call it when the Authority is no longer used.
func LoadAuthority(ctx context.Context, env *Env) (a *auth.Authority, close func(), err error) {
	a, err = auth.LoadAuthority(ctx, env.Secrets, env.DB.DB)
	if err != nil {
		return nil, nil, err
	}
	p := env.Config.CA.PKCS11
	if p.Module == "" {
		// Sealed keys rotate (gatehouse ca rotate).
		if err := a.EnableRotation(ctx, auth.SealedKeys{Secrets: env.Secrets}); err != nil {
			return nil, nil, err
		}
		return a, func() {}, nil
	}
	pin, err := os.ReadFile(p.PinFile)
	if err != nil {
		return nil, nil, fmt.Errorf("ca.pkcs11.pin_file: %w", err)
	}
	tok, err := hsm.Open(hsm.Config{Module: p.Module, TokenLabel: p.TokenLabel, Pin: strings.TrimSpace(string(pin))})
	if err != nil {
		return nil, nil, err
	}
	var s auth.CASigners
	for _, k := range []struct {
		ca  string
		dst *ssh.Signer
	}{{"user", &s.User}, {"session", &s.Session}, {"host", &s.Host}} {
		if *k.dst, err = tok.Signer(hsm.KeyLabel(k.ca), true); err != nil {
			tok.Close()
			return nil, nil, err
		}
	}
	a.UseCASigners(s)
	// Token keys rotate on the token.
	if err := a.EnableRotation(ctx, tokenKeys{tok}); err != nil {
		tok.Close()
		return nil, nil, err
	}
	return a, func() { tok.Close() }, nil
}

// tokenKeys is the auth.KeyStore of CA keys on a PKCS#11 token; a key's name
// is "pkcs11:" and its label.
type tokenKeys struct{ tok *hsm.Token }

func (k tokenKeys) Original(ca string) string { return "pkcs11:" + hsm.KeyLabel(ca) }

func (k tokenKeys) Load(ctx context.Context, name string) (ssh.Signer, error) {
	return k.tok.Signer(strings.TrimPrefix(name, "pkcs11:"), false)
}

func (k tokenKeys) Create(ctx context.Context, ca string) (string, ssh.Signer, error) {
	label := hsm.KeyLabel(ca) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s, err := k.tok.Signer(label, true)
	return "pkcs11:" + label, s, err
}

func (k tokenKeys) Destroy(ctx context.Context, name string) error {
	return k.tok.Delete(strings.TrimPrefix(name, "pkcs11:"))
}
