package secrets

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// wrappedPrefix marks a master key file whose key is encrypted by a key
// that never leaves a hardware token.
const wrappedPrefix = "gatehouse-wrapped-v1:"

// wrapAD binds a wrapped master key to its purpose.
var wrapAD = []byte("gatehouse master key v1")

// LoadWrappedKeyring reads a master key file encrypted with wrap (an AEAD
// whose key is on an HSM). When the file does not exist and create is set,
// a fresh master key is made and written wrapped (0600). A plain key file,
// or a key in GATEHOUSE_MASTER_KEY, is refused: the point of wrapping is
// that the file alone opens nothing.
func LoadWrappedKeyring(keyFile string, wrap cipher.AEAD, create bool) (*Keyring, error) {
	if os.Getenv(EnvMasterKey) != "" {
		return nil, fmt.Errorf("secrets: %s is set, but ca.pkcs11.wrap_master_key keeps the master key wrapped by the token: unset it", EnvMasterKey)
	}
	b, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("secrets: wrapped master key file %s does not exist", keyFile)
		}
		k := make([]byte, chacha20poly1305.KeySize)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		if err := WriteWrapped(keyFile, k, wrap); err != nil {
			return nil, err
		}
		return &Keyring{key: k}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if !strings.HasPrefix(text, wrappedPrefix) {
		return nil, notWrapped(keyFile)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(text, wrappedPrefix))
	ns := wrap.NonceSize()
	if err != nil || len(raw) < ns+wrap.Overhead() {
		return nil, fmt.Errorf("secrets: wrapped master key %s is malformed", keyFile)
	}
	k, err := wrap.Open(nil, raw[:ns], raw[ns:], wrapAD)
	if err != nil || len(k) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("secrets: the token cannot unwrap master key %s (another token, or the file was altered)", keyFile)
	}
	return &Keyring{key: k}, nil
}

// WriteWrapped writes key to keyFile encrypted with wrap, atomically (0600).
func WriteWrapped(keyFile string, key []byte, wrap cipher.AEAD) (err error) {
	nonce := make([]byte, wrap.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	defer func() {
		// PKCS#11 AEADs panic when the token refuses to encrypt.
		if r := recover(); r != nil {
			err = fmt.Errorf("secrets: the token refused to wrap the master key: %v", r)
		}
	}()
	sealed := wrap.Seal(append([]byte(nil), nonce...), nonce, key, wrapAD)
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	tmp := keyFile + ".wrapping"
	if err := os.WriteFile(tmp, []byte(wrappedPrefix+base64.StdEncoding.EncodeToString(sealed)+"\n"), 0o600); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	if err := os.Rename(tmp, keyFile); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("secrets: %w", err)
	}
	return nil
}

// Key returns the raw master key, for wrapping it (gatehouse ca
// wrap-master-key). Nothing else may call it.
func (k *Keyring) Key() []byte { return append([]byte(nil), k.key...) }

func notWrapped(keyFile string) error {
	return fmt.Errorf("secrets: master key %s is not wrapped; wrap it once with: gatehouse ca wrap-master-key", keyFile)
}

// CheckWrapped reports an error when keyFile exists and holds a plain key,
// before anything asks a token for a wrapping key.
func CheckWrapped(keyFile string) error {
	b, err := os.ReadFile(keyFile)
	if err != nil || strings.HasPrefix(strings.TrimSpace(string(b)), wrappedPrefix) {
		return nil
	}
	return notWrapped(keyFile)
}
