package secrets

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// Derive returns a 32-byte key for purpose, derived from the master key
// with HKDF-SHA256. Different purposes give independent keys, so a derived
// key (for example the one that signs backups) reveals nothing about the
// master key or about keys derived for other purposes.
func (k *Keyring) Derive(purpose string) []byte {
	out, err := hkdf.Key(sha256.New, k.key, nil, "gatehouse "+purpose, 32)
	if err != nil {
		panic("secrets: hkdf: " + err.Error()) // only for lengths > 255*32
	}
	return out
}
