package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"time"
)

// Approvals lets a plain `ssh` (no Gatehouse CLI, no certificate) log in
// through the browser: the gateway shows a short code and a URL; the user
// opens it, logs in with OIDC + TOTP, checks the code and approves; the
// waiting ssh continues. An approval is reused for the same client key for
// Window, so a loop of ssh commands opens one browser tab, not fifty.
type Approvals struct {
	// BaseURL is the gateway's public web URL.
	BaseURL string
	// Window is how long an approval is reused for the same key.
	Window time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// mu protects the following.
	mu      sync.Mutex
	pending map[string]*PendingApproval // by code
	reuse   map[string]approved         // by key fingerprint
}

type approved struct {
	id      Identity
	expires time.Time
}

// PendingApproval is one login waiting for the browser.
type PendingApproval struct {
	Code           string // what the user compares, e.g. "KQ7F-3XPA"
	URL            string
	KeyFingerprint string
	ClientAddr     string
	ClientVersion  string
	Expires        time.Time

	done chan Identity
	once sync.Once
}

// ErrApprovalUnknown is returned for an unknown or expired code.
var ErrApprovalUnknown = errors.New("auth: unknown or expired login code; run ssh again")

const approvalTTL = 5 * time.Minute

func (a *Approvals) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// codeAlphabet avoids look-alike characters.
const codeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func newApprovalCode() string {
	b := make([]byte, 8)
	rand.Read(b)
	var sb strings.Builder
	for i, c := range b {
		if i == 4 {
			sb.WriteByte('-')
		}
		sb.WriteByte(codeAlphabet[int(c)%len(codeAlphabet)])
	}
	return sb.String()
}

// Begin starts an approval for a client key.
func (a *Approvals) Begin(ctx context.Context, keyFingerprint, clientAddr, clientVersion string) (*PendingApproval, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending, a.reuse = map[string]*PendingApproval{}, map[string]approved{}
	}
	now := a.now()
	for code, p := range a.pending {
		if now.After(p.Expires) {
			delete(a.pending, code)
		}
	}
	if len(a.pending) > 1000 {
		return nil, errors.New("auth: too many logins waiting for approval; try again shortly")
	}
	p := &PendingApproval{Code: newApprovalCode(), KeyFingerprint: keyFingerprint, ClientAddr: clientAddr,
		ClientVersion: clientVersion, Expires: now.Add(approvalTTL), done: make(chan Identity, 1)}
	p.URL = strings.TrimRight(a.BaseURL, "/") + "/approve/" + p.Code
	a.pending[p.Code] = p
	return p, nil
}

// Lookup returns the pending approval for code (case-insensitive).
func (a *Approvals) Lookup(code string) (*PendingApproval, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pending[strings.ToUpper(strings.TrimSpace(code))]
	if !ok || a.now().After(p.Expires) {
		return nil, ErrApprovalUnknown
	}
	return p, nil
}

// Approve completes the approval code for id (a user who just passed OIDC
// and TOTP in the browser).
func (a *Approvals) Approve(code string, id Identity) error {
	p, err := a.Lookup(code)
	if err != nil {
		return err
	}
	a.mu.Lock()
	delete(a.pending, p.Code)
	if a.Window > 0 {
		a.reuse[p.KeyFingerprint] = approved{id: id, expires: a.now().Add(a.Window)}
	}
	a.mu.Unlock()
	p.once.Do(func() { p.done <- id })
	return nil
}

// Wait blocks until the approval is given or ctx ends.
func (p *PendingApproval) Wait(ctx context.Context) (Identity, error) {
	select {
	case id := <-p.done:
		return id, nil
	case <-ctx.Done():
		return Identity{}, ctx.Err()
	}
}

// Reuse returns the identity approved for this key within the window.
func (a *Approvals) Reuse(keyFingerprint string) (Identity, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.reuse[keyFingerprint]
	if !ok || a.now().After(r.expires) {
		delete(a.reuse, keyFingerprint)
		return Identity{}, false
	}
	return r.id, true
}
