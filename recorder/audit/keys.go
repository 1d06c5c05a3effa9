package audit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse/gatehouse/internal/secrets"
)

// The audit signing keys are one sealed secret (auditKeysSecret) holding the
// active key pair and the public halves of retired keys. Sealing with the
// master key is what makes the key list trustworthy: someone who can write
// the database but does not hold the master key can neither read the signing
// key nor add a verifier key of their own.
const (
	auditKeysSecret = "audit/keys"
	// auditSecret is the single-key secret of earlier versions, adopted into
	// auditKeysSecret on first open by a writer and then marked migrated.
	auditSecret = "audit/signing-key"
	// legacyMigrated replaces the legacy secret's value once adopted, so a
	// deleted auditKeysSecret cannot be re-adopted from it.
	legacyMigrated = "migrated to " + auditKeysSecret
)

// AuditKeyName names the checkpoint signing key in notes.
const KeyName = "gatehouse-audit"

// Key is the public half of one audit signing key.
type Key struct {
	ID       string    // key hash as 8 hex digits, as in the note verifier key
	Verifier string    // golang.org/x/mod/sumdb/note verifier key
	Created  time.Time // zero for a key adopted from an earlier version
	Retired  time.Time // zero while the key signs
}

// Active reports whether the key is the one that signs.
func (k Key) Active() bool { return k.Retired.IsZero() }

// Keys is the set of audit verifier keys, the active key first.
type Keys []Key

// ErrNoKey is returned when the sealed audit keys are absent.
var ErrNoKey = errors.New("audit: no audit signing key in the database")

// auditKeyFile is the sealed content of auditKeysSecret.
type auditKeyFile struct {
	Signer  string `json:"signer"` // the active key's private half
	Keys    []Key  `json:"keys"`   // active first, then retired (public only)
	Version int    `json:"version"`
}

type legacyKeys struct{ Signer, Verifier string }

// keyID returns the 8-hex-digit id of a verifier key.
func keyID(vkey string) (string, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return "", fmt.Errorf("audit: verifier key: %w", err)
	}
	return fmt.Sprintf("%08x", v.KeyHash()), nil
}

// ParseKeys reads verifier keys, one per line (blank lines and lines
// starting with '#' ignored). Keys given this way carry no retirement time.
func ParseKeys(text string) (Keys, error) {
	var ks Keys
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := keyID(line)
		if err != nil {
			return nil, err
		}
		ks = append(ks, Key{ID: id, Verifier: line})
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("audit: no verifier key given")
	}
	return ks, nil
}

// verifiers returns the keys as a note.Verifiers.
func (ks Keys) verifiers() (note.Verifiers, error) {
	var vs []note.Verifier
	for _, k := range ks {
		v, err := note.NewVerifier(k.Verifier)
		if err != nil {
			return nil, fmt.Errorf("audit: key %s: %w", k.ID, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

// byID returns the key with id.
func (ks Keys) byID(id string) (Key, bool) {
	for _, k := range ks {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}

// String lists the keys with their states, for reports.
func (ks Keys) String() string {
	var parts []string
	for _, k := range ks {
		s := k.ID + " (active)"
		if !k.Active() {
			s = fmt.Sprintf("%s (retired %s)", k.ID, k.Retired.UTC().Format(time.RFC3339))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// readKeyFile returns the sealed key file, or a file built in memory from
// the legacy single-key secret (legacy true), or ErrNoKey. It writes
// nothing.
func readKeyFile(ctx context.Context, sec *secrets.Store) (f auditKeyFile, raw []byte, legacy bool, err error) {
	raw, err = sec.Get(ctx, auditKeysSecret)
	if err == nil {
		if err := json.Unmarshal(raw, &f); err != nil || len(f.Keys) == 0 {
			return f, nil, false, fmt.Errorf("audit: keys: malformed sealed value")
		}
		return f, raw, false, nil
	}
	if !errors.Is(err, secrets.ErrNotFound) {
		return f, nil, false, fmt.Errorf("audit: keys: %w", err)
	}
	old, err := sec.Get(ctx, auditSecret)
	if errors.Is(err, secrets.ErrNotFound) || string(old) == legacyMigrated {
		return f, nil, false, ErrNoKey
	}
	if err != nil {
		return f, nil, false, fmt.Errorf("audit: keys: %w", err)
	}
	var lk legacyKeys
	if err := json.Unmarshal(old, &lk); err != nil {
		return f, nil, false, fmt.Errorf("audit: signing key: %w", err)
	}
	id, err := keyID(lk.Verifier)
	if err != nil {
		return f, nil, false, err
	}
	f = auditKeyFile{Signer: lk.Signer, Keys: []Key{{ID: id, Verifier: lk.Verifier}}, Version: 1}
	return f, nil, true, nil
}

// PublicKeys returns the verifier keys (active first, then retired)
// without writing anything: read-only commands and verify use it.
func PublicKeys(ctx context.Context, sec *secrets.Store) (Keys, error) {
	f, _, _, err := readKeyFile(ctx, sec)
	if err != nil {
		return nil, err
	}
	return Keys(f.Keys), nil
}

// VerifierKey returns the active verifier key without writing anything.
func VerifierKey(sec *secrets.Store) (string, error) {
	ks, err := PublicKeys(context.Background(), sec)
	if err != nil {
		return "", err
	}
	return ks[0].Verifier, nil
}

// newKeyFile generates a fresh active key, keeping prev's keys as retired at
// now.
func newKeyFile(prev *auditKeyFile, now time.Time) (auditKeyFile, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, KeyName)
	if err != nil {
		return auditKeyFile{}, fmt.Errorf("audit: key: %w", err)
	}
	id, err := keyID(vkey)
	if err != nil {
		return auditKeyFile{}, err
	}
	f := auditKeyFile{Signer: skey, Version: 1, Keys: []Key{{ID: id, Verifier: vkey, Created: now.UTC()}}}
	if prev != nil {
		for _, k := range prev.Keys {
			if k.Active() {
				k.Retired = now.UTC()
			}
			f.Keys = append(f.Keys, k)
		}
	}
	return f, nil
}

// logIsEmpty reports whether nothing was ever written to the audit log.
func logIsEmpty(ctx context.Context, db *sql.DB) (bool, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM audit_events) + (SELECT COUNT(*) FROM audit_checkpoints)
		+ (SELECT COUNT(*) FROM audit_head)`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("audit: %w", err)
	}
	return n == 0, nil
}

// keyOrigin says where a writer's key file came from.
type keyOrigin int

const (
	keyExisting keyOrigin = iota // the sealed key list
	keyAdopted                   // the single key of an earlier version
	keyCreated                   // created now, for an empty log
)

// ensureKeyFile returns the key file for a writer: the sealed one; the
// legacy key to adopt; or a fresh key, but only for an empty log — a log with
// events and no key was tampered with, and a new key would launder it.
func ensureKeyFile(ctx context.Context, db *sql.DB, sec *secrets.Store, now time.Time) (auditKeyFile, keyOrigin, error) {
	f, _, legacy, err := readKeyFile(ctx, sec)
	switch {
	case err == nil && !legacy:
		return f, keyExisting, nil
	case err == nil && legacy:
		return f, keyAdopted, nil
	case !errors.Is(err, ErrNoKey):
		return f, keyExisting, err
	}
	empty, err := logIsEmpty(ctx, db)
	if err != nil {
		return f, keyExisting, err
	}
	if !empty {
		return f, keyExisting, fmt.Errorf("%w, but the audit log holds events or checkpoints: the database was changed "+
			"without the master key (run 'gatehouse audit verify')", ErrNoKey)
	}
	// Two writers starting at once on an empty log agree on one key.
	raw, err := sec.GetOrCreate(ctx, auditKeysSecret, func() ([]byte, error) {
		nf, err := newKeyFile(nil, now)
		if err != nil {
			return nil, err
		}
		return json.Marshal(nf)
	})
	if err != nil {
		return f, keyCreated, fmt.Errorf("audit: keys: %w", err)
	}
	if err := json.Unmarshal(raw, &f); err != nil || len(f.Keys) == 0 {
		return f, keyCreated, fmt.Errorf("audit: keys: malformed sealed value")
	}
	return f, keyCreated, nil
}

// VerifyOptionsFor returns the keys to verify with, read without writing
// anything. Once the sealed key list exists, a writer has signed a head, so
// verify then requires one even for an empty log (an emptied log fails).
func VerifyOptionsFor(ctx context.Context, sec *secrets.Store) (VerifyOptions, error) {
	f, _, legacy, err := readKeyFile(ctx, sec)
	if errors.Is(err, ErrNoKey) {
		return VerifyOptions{}, nil
	}
	if err != nil {
		return VerifyOptions{}, err
	}
	return VerifyOptions{Keys: Keys(f.Keys), RequireHead: !legacy}, nil
}

func storeKeyFile(ctx context.Context, sec *secrets.Store, f auditKeyFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := sec.Put(ctx, auditKeysSecret, b); err != nil {
		return fmt.Errorf("audit: keys: %w", err)
	}
	return nil
}

// signerFor returns the note signer of f's active key.
func signerFor(f auditKeyFile) (note.Signer, error) {
	s, err := note.NewSigner(f.Signer)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key: %w", err)
	}
	if id := fmt.Sprintf("%08x", s.KeyHash()); id != f.Keys[0].ID || !f.Keys[0].Active() {
		return nil, fmt.Errorf("audit: keys: the signing key does not match the active key %s", f.Keys[0].ID)
	}
	return s, nil
}
