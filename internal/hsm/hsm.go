//go:build cgo

package hsm

import (
	"crypto/cipher"
	"crypto/elliptic"
	"errors"
	"fmt"

	"github.com/ThalesGroup/crypto11"
	"golang.org/x/crypto/ssh"
)

// Token is an open PKCS#11 token. Close it when done.
type Token struct {
	ctx *crypto11.Context
}

// Open logs in to the token.
func Open(cfg Config) (*Token, error) {
	if cfg.Module == "" || cfg.TokenLabel == "" {
		return nil, errors.New("hsm: module and token_label are required")
	}
	ctx, err := crypto11.Configure(&crypto11.Config{Path: cfg.Module, TokenLabel: cfg.TokenLabel, Pin: cfg.Pin})
	if err != nil {
		return nil, fmt.Errorf("hsm: open token %q with %s: %w", cfg.TokenLabel, cfg.Module, err)
	}
	return &Token{ctx: ctx}, nil
}

// Close logs out and unloads the module.
func (t *Token) Close() error { return t.ctx.Close() }

// Signer returns an SSH signer for the key labelled label, generating an
// ECDSA P-256 key pair on the token when there is none and create is set.
func (t *Token) Signer(label string, create bool) (ssh.Signer, error) {
	ks, err := t.ctx.FindKeyPairs(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("hsm: find key %s: %w", label, err)
	}
	var k crypto11.Signer
	if len(ks) > 0 {
		k = ks[0]
	} else {
		if !create {
			return nil, fmt.Errorf("hsm: no key %s on the token", label)
		}
		if k, err = t.ctx.GenerateECDSAKeyPairWithLabel([]byte(label), []byte(label), elliptic.P256()); err != nil {
			return nil, fmt.Errorf("hsm: generate key %s: %w", label, err)
		}
	}
	s, err := ssh.NewSignerFromSigner(k)
	if err != nil {
		return nil, fmt.Errorf("hsm: key %s: %w", label, err)
	}
	return s, nil
}

// Delete destroys the key pair labelled label on the token.
func (t *Token) Delete(label string) error {
	ks, err := t.ctx.FindKeyPairs(nil, []byte(label))
	if err != nil {
		return fmt.Errorf("hsm: find key %s: %w", label, err)
	}
	for _, k := range ks {
		if err := k.Delete(); err != nil {
			return fmt.Errorf("hsm: delete key %s: %w", label, err)
		}
	}
	return nil
}

// WrapAEAD returns AES-256-GCM under the secret key labelled label on the
// token, generating it there (sensitive, not extractable) when there is none
// and create is set. Encryption and decryption run on the token; the key
// never leaves it.
func (t *Token) WrapAEAD(label string, create bool) (cipher.AEAD, error) {
	ks, err := t.ctx.FindKeys(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("hsm: find key %s: %w", label, err)
	}
	var k *crypto11.SecretKey
	if len(ks) > 0 {
		k = ks[0]
	} else {
		if !create {
			return nil, fmt.Errorf("hsm: no key %s on the token (was the master key wrapped by another token?)", label)
		}
		if k, err = t.ctx.GenerateSecretKeyWithLabel([]byte(label), []byte(label), 256, crypto11.CipherAES); err != nil {
			return nil, fmt.Errorf("hsm: generate key %s: %w", label, err)
		}
	}
	a, err := k.NewGCM()
	if err != nil {
		return nil, fmt.Errorf("hsm: key %s: %w", label, err)
	}
	return a, nil
}
