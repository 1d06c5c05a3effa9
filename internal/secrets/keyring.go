// Package secrets seals Gatehouse's secrets (CA keys, TOTP secrets, recording
// data keys) with a 32-byte master key using XChaCha20-Poly1305, and keeps
// sealed values in the database.
//
// The master key comes from GATEHOUSE_MASTER_KEY (base64) or from a key file
// created 0600 on first start. It is never logged and never exported. Each
// sealed value is bound to its name (additional data), so a sealed blob cannot
// be moved to another name without detection.
package secrets

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// EnvMasterKey is the environment variable that may carry the master key.
const EnvMasterKey = "GATEHOUSE_MASTER_KEY"

// ErrNotFound is returned by Get for a name never stored.
var ErrNotFound = errors.New("secrets: not found")

// Keyring seals and opens values with the master key.
type Keyring struct {
	key []byte
}

// LoadKeyring reads the master key from the environment or keyFile, creating
// keyFile (0600) with a fresh random key when neither exists.
func LoadKeyring(keyFile string) (*Keyring, error) {
	return LoadKeyringFrom(keyFile, true)
}

// LoadKeyringFrom reads the master key from the environment or keyFile.
// When neither exists it creates keyFile if create is set, and otherwise
// fails: a key file configured outside the data directory (a mounted secret)
// that is missing must not be replaced by a new key, which could not open
// what the old one sealed.
func LoadKeyringFrom(keyFile string, create bool) (*Keyring, error) {
	if v := os.Getenv(EnvMasterKey); v != "" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil || len(k) != chacha20poly1305.KeySize {
			return nil, fmt.Errorf("secrets: %s must be %d bytes, base64", EnvMasterKey, chacha20poly1305.KeySize)
		}
		return &Keyring{key: k}, nil
	}
	b, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("secrets: master key file %s does not exist (create it once with: head -c 32 /dev/urandom | base64 > %s; chmod 600 %s), or set %s", keyFile, keyFile, keyFile, EnvMasterKey)
		}
		return createKeyFile(keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	if fi, err := os.Stat(keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secrets: master key %s is readable by others (mode %v): chmod 600 it", keyFile, fi.Mode().Perm())
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("secrets: master key %s is not %d bytes of base64", keyFile, chacha20poly1305.KeySize)
	}
	return &Keyring{key: k}, nil
}

func createKeyFile(keyFile string) (*Keyring, error) {
	k := make([]byte, chacha20poly1305.KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	f, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("secrets: create master key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		return nil, fmt.Errorf("secrets: write master key: %w", err)
	}
	return &Keyring{key: k}, f.Sync()
}

// NewKeyring returns a keyring for a raw 32-byte key (tests, tools).
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("secrets: key must be %d bytes", chacha20poly1305.KeySize)
	}
	return &Keyring{key: append([]byte(nil), key...)}, nil
}

// Seal encrypts plaintext bound to name.
func (k *Keyring) Seal(name string, plaintext []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, []byte(name)), nil
}

// Open decrypts a value sealed under name.
func (k *Keyring) Open(name string, sealed []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("secrets: %s: sealed value too short", name)
	}
	pt, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("secrets: %s: cannot decrypt (wrong master key or tampered value)", name)
	}
	return pt, nil
}

// Store keeps sealed secrets in the database's secrets table.
type Store struct {
	db *sql.DB
	kr *Keyring
}

// NewStore returns a Store over db sealing with kr.
func NewStore(db *sql.DB, kr *Keyring) *Store { return &Store{db: db, kr: kr} }

// Keyring returns the keyring the store seals with.
func (s *Store) Keyring() *Keyring { return s.kr }

// Get returns the opened secret name, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	var sealed []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return s.kr.Open(name, sealed)
}

// GetOrCreate returns the secret name, creating it with gen when absent.
// Concurrent callers agree on one value.
func (s *Store) GetOrCreate(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	v, err := s.Get(ctx, name)
	if !errors.Is(err, ErrNotFound) {
		return v, err
	}
	v, err = gen()
	if err != nil {
		return nil, err
	}
	sealed, err := s.kr.Seal(name, v)
	if err != nil {
		return nil, err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO secrets(name, value, created_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING`,
		name, sealed, time.Now().Unix()); err != nil {
		return nil, fmt.Errorf("secrets: store %s: %w", name, err)
	}
	return s.Get(ctx, name)
}

// Put stores (or replaces) the secret name.
func (s *Store) Put(ctx context.Context, name string, value []byte) error {
	sealed, err := s.kr.Seal(name, value)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO secrets(name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET value = excluded.value`, name, sealed, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("secrets: store %s: %w", name, err)
	}
	return nil
}
