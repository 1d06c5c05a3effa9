package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/secrets"
)

// CA kinds that rotate.
var caKinds = []string{"user", "session", "host"}

// CA key states (table ca_keys).
const (
	KeyNext     = "next"
	KeyActive   = "active"
	KeyPrevious = "previous"
	KeyRetired  = "retired"
)

// CAKey is one key of a CA and where it is in its rotation.
type CAKey struct {
	CA         string // user, session or host
	KeyID      string // SHA256 fingerprint
	State      string
	Created    time.Time
	ActivateAt time.Time // when a next key starts signing
	Public     ssh.PublicKey
	secret     string
}

// ErrRotationPending is returned by Rotate while a next key waits.
var ErrRotationPending = errors.New("auth: a rotation of this CA is already under way")

// rotatingSigner is a CA key that can be replaced while the Authority is in
// use. Sign uses the key whose public half the data to sign names (a
// certificate carries its SignatureKey), so a certificate started just
// before a switch is still signed consistently.
type rotatingSigner struct {
	cur   atomic.Pointer[ssh.Signer]
	mu    sync.Mutex
	known []ssh.Signer // every key this process has signed with
}

func newRotatingSigner(s ssh.Signer) *rotatingSigner {
	r := &rotatingSigner{known: []ssh.Signer{s}}
	r.cur.Store(&s)
	return r
}

func (r *rotatingSigner) current() ssh.Signer { return *r.cur.Load() }

// set makes s the signing key.
func (r *rotatingSigner) set(s ssh.Signer) {
	r.mu.Lock()
	r.known = append(r.known, s)
	r.mu.Unlock()
	r.cur.Store(&s)
}

// PublicKey is the current key.
func (r *rotatingSigner) PublicKey() ssh.PublicKey { return r.current().PublicKey() }

func (r *rotatingSigner) pick(data []byte) ssh.Signer {
	cur := r.current()
	if bytes.Contains(data, cur.PublicKey().Marshal()) {
		return cur
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.known {
		if bytes.Contains(data, s.PublicKey().Marshal()) {
			return s
		}
	}
	return cur
}

// Sign signs data with the key it names (see rotatingSigner).
func (r *rotatingSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	return r.pick(data).Sign(rand, data)
}

// SignWithAlgorithm is Sign for RSA CAs.
func (r *rotatingSigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	s := r.pick(data)
	if as, ok := s.(ssh.AlgorithmSigner); ok {
		return as.SignWithAlgorithm(rand, data, algorithm)
	}
	return s.Sign(rand, data)
}

// KeyStore keeps the private keys of rotating CAs: sealed in the database
// (SealedKeys) or on a PKCS#11 token.
type KeyStore interface {
	// Original names the key the CA had before any rotation.
	Original(ca string) string
	// Load returns the signer of the key name.
	Load(ctx context.Context, name string) (ssh.Signer, error)
	// Create makes a new key for ca and returns its name.
	Create(ctx context.Context, ca string) (string, ssh.Signer, error)
	// Destroy makes the key name unusable for good.
	Destroy(ctx context.Context, name string) error
}

// SealedKeys is the KeyStore of Ed25519 keys sealed with the master key.
type SealedKeys struct{ Secrets *secrets.Store }

// Original is the sealed secret LoadAuthority reads.
func (k SealedKeys) Original(ca string) string { return "ca/" + ca }

// Load opens a sealed Ed25519 seed.
func (k SealedKeys) Load(ctx context.Context, name string) (ssh.Signer, error) {
	seed, err := k.Secrets.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("auth: load %s: %w", name, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("auth: %s: stored key has wrong size (retired?)", name)
	}
	return ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed))
}

// Create seals a new Ed25519 key.
func (k SealedKeys) Create(ctx context.Context, ca string) (string, ssh.Signer, error) {
	seed, err := newEd25519Seed()
	if err != nil {
		return "", nil, err
	}
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return "", nil, err
	}
	name := "ca/" + ca + "/" + ssh.FingerprintSHA256(s.PublicKey())
	return name, s, k.Secrets.Put(ctx, name, seed)
}

// Destroy overwrites the sealed key. The original key's slot (ca/<kind>) is
// read at every start, so it gets a fresh key nobody trusts.
func (k SealedKeys) Destroy(ctx context.Context, name string) error {
	tomb := []byte("retired")
	for _, ca := range caKinds {
		if name == k.Original(ca) {
			var err error
			if tomb, err = newEd25519Seed(); err != nil {
				return err
			}
		}
	}
	return k.Secrets.Put(ctx, name, tomb)
}

// rotation is the Authority's rotation state.
type rotation struct {
	keys    KeyStore
	signers map[string]*rotatingSigner
	// userCAs are the public keys of user CAs whose certificates the gateway
	// accepts (active and previous).
	userCAs atomic.Pointer[[]ssh.PublicKey]
}

// EnableRotation makes the CAs follow the ca_keys table: it applies
// switches that are due and signs with each CA's active key. Call it right
// after LoadAuthority, before the Authority is shared; then call
// ApplyRotations periodically.
func (a *Authority) EnableRotation(ctx context.Context, keys KeyStore) error {
	r := &rotation{keys: keys, signers: map[string]*rotatingSigner{}}
	orig := map[string]*ssh.Signer{"user": &a.userCA, "session": &a.sessionCA, "host": &a.hostCA}
	for _, ca := range caKinds {
		r.signers[ca] = newRotatingSigner(*orig[ca])
	}
	a.rot = r
	if _, err := a.ApplyRotations(ctx); err != nil {
		return err
	}
	a.UseCASigners(CASigners{User: r.signers["user"], Session: r.signers["session"], Host: r.signers["host"]})
	return nil
}

// ApplyRotations switches every CA whose next key's time has come and loads
// the active keys. It returns the CAs that switched.
func (a *Authority) ApplyRotations(ctx context.Context) ([]string, error) {
	if a.rot == nil || a.db == nil {
		return nil, nil
	}
	switched, err := a.switchDue(ctx)
	if err != nil {
		return nil, err
	}
	var userCAs []ssh.PublicKey
	for _, ca := range caKinds {
		keys, err := a.CAKeys(ctx, ca)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if ca == "user" && (k.State == KeyActive || k.State == KeyPrevious) {
				userCAs = append(userCAs, k.Public)
			}
			if k.State != KeyActive || k.secret == "" {
				continue
			}
			rs := a.rot.signers[ca]
			if bytes.Equal(rs.PublicKey().Marshal(), k.Public.Marshal()) {
				continue
			}
			s, err := a.rot.keys.Load(ctx, k.secret)
			if err != nil {
				return nil, err
			}
			rs.set(s)
			if ca == "host" {
				a.mu.Lock()
				a.hostCerts = map[string]ssh.Signer{}
				a.mu.Unlock()
			}
		}
	}
	a.rot.userCAs.Store(&userCAs)
	return switched, nil
}

// switchDue moves due next keys to active and the active ones to previous.
func (a *Authority) switchDue(ctx context.Context) ([]string, error) {
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("auth: rotation: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT ca, key_id FROM ca_keys WHERE state = 'next' AND activate_at <= ?`, a.now().Unix())
	if err != nil {
		return nil, fmt.Errorf("auth: rotation: %w", err)
	}
	due := map[string]string{}
	for rows.Next() {
		var ca, id string
		if err := rows.Scan(&ca, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("auth: rotation: %w", err)
		}
		due[ca] = id
	}
	rows.Close()
	var switched []string
	for _, ca := range caKinds {
		id, ok := due[ca]
		if !ok {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ca_keys SET state = 'previous' WHERE ca = ? AND state = 'active'`, ca); err != nil {
			return nil, fmt.Errorf("auth: rotation: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ca_keys SET state = 'active' WHERE ca = ? AND key_id = ?`, ca, id); err != nil {
			return nil, fmt.Errorf("auth: rotation: %w", err)
		}
		switched = append(switched, ca)
	}
	return switched, tx.Commit()
}

// CAKeys lists the keys of ca, oldest first. A CA that never rotated has
// one: its original key, active.
func (a *Authority) CAKeys(ctx context.Context, ca string) ([]CAKey, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT key_id, secret, state, created, activate_at FROM ca_keys WHERE ca = ? ORDER BY created, rowid`, ca)
	if err != nil {
		return nil, fmt.Errorf("auth: ca keys: %w", err)
	}
	defer rows.Close()
	var out []CAKey
	for rows.Next() {
		k := CAKey{CA: ca}
		var created, act int64
		if err := rows.Scan(&k.KeyID, &k.secret, &k.State, &created, &act); err != nil {
			return nil, fmt.Errorf("auth: ca keys: %w", err)
		}
		k.Created, k.ActivateAt = time.Unix(created, 0).UTC(), time.Unix(act, 0).UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		pub := a.originalKey(ca).PublicKey()
		return []CAKey{{CA: ca, KeyID: ssh.FingerprintSHA256(pub), State: KeyActive, Public: pub, secret: a.rot.keys.Original(ca)}}, nil
	}
	for i := range out {
		if err := a.fillPublic(ctx, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (a *Authority) fillPublic(ctx context.Context, k *CAKey) error {
	if k.State == KeyRetired {
		return nil
	}
	s, err := a.rot.keys.Load(ctx, k.secret)
	if err != nil {
		return err
	}
	k.Public = s.PublicKey()
	return nil
}

// originalKey is the CA's key as loaded (before rotation wrapped it).
func (a *Authority) originalKey(ca string) ssh.Signer {
	if a.rot != nil {
		return a.rot.signers[ca].known[0]
	}
	return map[string]ssh.Signer{"user": a.userCA, "session": a.sessionCA, "host": a.hostCA}[ca]
}

// PublishedKeys are the keys of ca that peers must trust now: active, next
// and previous (not retired).
func (a *Authority) PublishedKeys(ctx context.Context, ca string) ([]CAKey, error) {
	keys, err := a.CAKeys(ctx, ca)
	if err != nil {
		return nil, err
	}
	var out []CAKey
	for _, k := range keys {
		if k.State != KeyRetired {
			out = append(out, k)
		}
	}
	return out, nil
}

// Rotate creates the next key of ca, published at once and signing from
// now+overlap on. The original key is recorded as active on the first
// rotation.
func (a *Authority) Rotate(ctx context.Context, ca string, overlap time.Duration) (CAKey, error) {
	if a.rot == nil {
		return CAKey{}, errors.New("auth: rotation is not enabled for these CA keys")
	}
	keys, err := a.CAKeys(ctx, ca)
	if err != nil {
		return CAKey{}, err
	}
	for _, k := range keys {
		if k.State == KeyNext {
			return CAKey{}, fmt.Errorf("%w: next key %s starts signing at %s", ErrRotationPending, k.KeyID, k.ActivateAt.Format(time.RFC3339))
		}
	}
	name, s, err := a.rot.keys.Create(ctx, ca)
	if err != nil {
		return CAKey{}, err
	}
	now := a.now()
	k := CAKey{CA: ca, KeyID: ssh.FingerprintSHA256(s.PublicKey()), State: KeyNext, Created: now, ActivateAt: now.Add(overlap),
		Public: s.PublicKey(), secret: name}
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return CAKey{}, fmt.Errorf("auth: rotation: %w", err)
	}
	defer tx.Rollback()
	if len(keys) == 1 && keys[0].secret == a.rot.keys.Original(ca) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ca_keys(ca, key_id, secret, state, created) VALUES (?, ?, ?, 'active', ?) ON CONFLICT DO NOTHING`,
			ca, keys[0].KeyID, keys[0].secret, now.Unix()-1); err != nil {
			return CAKey{}, fmt.Errorf("auth: rotation: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ca_keys(ca, key_id, secret, state, created, activate_at) VALUES (?, ?, ?, 'next', ?, ?)`,
		ca, k.KeyID, k.secret, now.Unix(), k.ActivateAt.Unix()); err != nil {
		return CAKey{}, fmt.Errorf("auth: rotation: %w", err)
	}
	return k, tx.Commit()
}

// Retire retires the previous key of ca: it is published nowhere, accepted
// nowhere, and its sealed private key is destroyed.
func (a *Authority) Retire(ctx context.Context, ca string) (CAKey, error) {
	if a.rot == nil {
		return CAKey{}, errors.New("auth: rotation is not enabled for these CA keys")
	}
	keys, err := a.CAKeys(ctx, ca)
	if err != nil {
		return CAKey{}, err
	}
	for _, k := range keys {
		if k.State != KeyPrevious {
			continue
		}
		if err := a.rot.keys.Destroy(ctx, k.secret); err != nil {
			return CAKey{}, err
		}
		if _, err := a.db.ExecContext(ctx, `UPDATE ca_keys SET state = 'retired', retired_at = ? WHERE ca = ? AND key_id = ?`,
			a.now().Unix(), ca, k.KeyID); err != nil {
			return CAKey{}, fmt.Errorf("auth: rotation: %w", err)
		}
		k.State = KeyRetired
		return k, nil
	}
	return CAKey{}, fmt.Errorf("auth: the %s CA has no previous key to retire (rotate, wait for the switch, then retire)", ca)
}

// isUserCA reports whether k is a user CA whose certificates the gateway
// accepts: the active key, or the previous one until it is retired.
func (a *Authority) isUserCA(k ssh.PublicKey) bool {
	if bytes.Equal(k.Marshal(), a.userCA.PublicKey().Marshal()) {
		return true
	}
	if a.rot == nil {
		return false
	}
	if p := a.rot.userCAs.Load(); p != nil {
		for _, u := range *p {
			if bytes.Equal(k.Marshal(), u.Marshal()) {
				return true
			}
		}
	}
	return false
}
