//go:build !cgo

package hsm

import (
	"crypto/cipher"
	"errors"

	"golang.org/x/crypto/ssh"
)

// Token is unavailable without cgo.
type Token struct{}

// ErrNoCgo is returned by Open in binaries built with CGO_ENABLED=0.
var ErrNoCgo = errors.New("hsm: this gatehouse binary was built without cgo; PKCS#11 (ca.pkcs11) needs a cgo build")

// Open fails: PKCS#11 modules need cgo.
func Open(cfg Config) (*Token, error) { return nil, ErrNoCgo }

// Close does nothing.
func (t *Token) Close() error { return nil }

// Signer fails: PKCS#11 modules need cgo.
func (t *Token) Signer(label string, create bool) (ssh.Signer, error) { return nil, ErrNoCgo }

// Delete fails: PKCS#11 modules need cgo.
func (t *Token) Delete(label string) error { return ErrNoCgo }

// WrapAEAD fails: PKCS#11 modules need cgo.
func (t *Token) WrapAEAD(label string, create bool) (cipher.AEAD, error) { return nil, ErrNoCgo }
