package auth

import (
	"context"
	"crypto/rand"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/usererr"
)

// Approvals lets a plain `ssh` (no Gatehouse CLI, no certificate) log in
// through the browser: the gateway shows a short code and a URL; the user
// opens it, logs in with OIDC + TOTP, checks what is being asked (login and
// target, source address, client version, key fingerprint) and approves; the
// waiting ssh continues.
//
// An approval covers exactly what was asked: the same key, from the same
// source IP, for the same login@target. It is reused for Window, so a loop of
// ssh commands opens one browser tab, not fifty; a request from another
// address or for another target needs its own approval.
//
// A pending code lives only as long as the ssh connection that asked for it:
// Begin takes the connection's context and the code dies with it. Pending
// codes are capped per source and in total, because anyone who can reach the
// SSH port can ask for one.
type Approvals struct {
	// BaseURL is the gateway's public web URL.
	BaseURL string
	// Window is how long an approval is reused for the same key, source IP
	// and login@target. Zero means no reuse.
	Window time.Duration
	// MaxPerSource bounds the codes pending at once from one source (an IPv4
	// address or an IPv6 /64). Zero means 10.
	MaxPerSource int
	// MaxPending bounds the codes pending at once in total. Zero means 1000.
	MaxPending int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// mu protects the following.
	mu        sync.Mutex
	pending   map[string]*PendingApproval // by code
	closed    map[string]time.Time        // codes whose connection went away, until they would have expired
	perSource map[string]int              // pending codes per source
	reuse     map[reuseKey]approved
	known     map[string]string // key fingerprint -> user it was last approved for
}

// ApprovalRequest is what a plain-ssh login asks the browser to approve.
type ApprovalRequest struct {
	KeyFingerprint string // SHA256 fingerprint of the client's plain key
	ClientAddr     string // IP:port of the ssh client
	ClientVersion  string // the client's SSH version string (untrusted, capped)
	Login          string // account asked for on the target; empty for the target list
	Target         string // target asked for; empty for the target list
}

// Asked is the login@target requested, or "the target list" for a login
// without a target.
func (r ApprovalRequest) Asked() string {
	if r.Target == "" {
		return "the target list"
	}
	return r.Login + "@" + r.Target
}

// ClientIP is the IP address of the ssh client.
func (r ApprovalRequest) ClientIP() string {
	host, _, err := net.SplitHostPort(r.ClientAddr)
	if err != nil {
		return r.ClientAddr
	}
	return host
}

// Source is what per-source caps count by: the IPv4 address, or the /64 of
// an IPv6 address (one host usually holds a whole /64).
func Source(ip string) string {
	a := net.ParseIP(ip)
	if a == nil || a.To4() != nil {
		return ip
	}
	return a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

type reuseKey struct{ fingerprint, ip, asked string }

func (r ApprovalRequest) reuseKey() reuseKey {
	return reuseKey{r.KeyFingerprint, r.ClientIP(), r.Asked()}
}

type approved struct {
	id      Identity
	expires time.Time
}

// PendingApproval is one login waiting for the browser. Its lifecycle:
// Begin creates it; then exactly one of Approve, the connection's context
// ending, Close or expiry ends it.
type PendingApproval struct {
	ApprovalRequest
	Code    string // what the user compares, e.g. "KQ7F-3XPA"
	URL     string
	Created time.Time
	Expires time.Time

	owner *Approvals
	done  chan Identity // receives the identity once approved
	gone  chan struct{} // closed when the code ended without approval
	stop  func() bool   // unregisters the context watch
}

// Approval errors; the messages are what users see.
var (
	ErrApprovalUnknown = usererr.New("auth", "unknown or expired login code; run ssh again")
	ErrApprovalClosed  = usererr.New("auth", "the ssh connection that asked for this code has closed; nothing was approved")
	ErrApprovalsSource = usererr.New("auth", "too many logins from your address are waiting for approval; finish or cancel them first")
	ErrApprovalsFull   = usererr.New("auth", "too many logins are waiting for approval; try again shortly")
)

// ApprovalTTL is how long a code can be approved at most.
const ApprovalTTL = 5 * time.Minute

// Caps on untrusted strings kept with a pending approval.
const maxClientVersion = 255

func (a *Approvals) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Approvals) limits() (perSource, total int) {
	perSource, total = a.MaxPerSource, a.MaxPending
	if perSource <= 0 {
		perSource = 10
	}
	if total <= 0 {
		total = 1000
	}
	return perSource, total
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

func (a *Approvals) init() {
	if a.pending == nil {
		a.pending, a.closed, a.perSource = map[string]*PendingApproval{}, map[string]time.Time{}, map[string]int{}
		a.reuse, a.known = map[reuseKey]approved{}, map[string]string{}
	}
}

// Begin starts an approval for req. ctx is the asking connection's context:
// when it ends, the code can no longer be approved.
func (a *Approvals) Begin(ctx context.Context, req ApprovalRequest) (*PendingApproval, error) {
	if len(req.ClientVersion) > maxClientVersion {
		req.ClientVersion = req.ClientVersion[:maxClientVersion]
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	now := a.now()
	a.sweep(now)
	perSource, total := a.limits()
	src := Source(req.ClientIP())
	if a.perSource[src] >= perSource {
		return nil, ErrApprovalsSource
	}
	if len(a.pending) >= total {
		return nil, ErrApprovalsFull
	}
	p := &PendingApproval{ApprovalRequest: req, Code: newApprovalCode(), Created: now, Expires: now.Add(ApprovalTTL),
		owner: a, done: make(chan Identity, 1), gone: make(chan struct{})}
	for a.pending[p.Code] != nil || !a.closed[p.Code].IsZero() {
		p.Code = newApprovalCode()
	}
	p.URL = strings.TrimRight(a.BaseURL, "/") + "/approve/" + p.Code
	a.pending[p.Code] = p
	a.perSource[src]++
	p.stop = context.AfterFunc(ctx, func() { a.end(p) })
	return p, nil
}

// sweep drops expired codes and tombstones. a.mu must be held.
func (a *Approvals) sweep(now time.Time) {
	for _, p := range a.pending {
		if now.After(p.Expires) {
			a.remove(p, false)
		}
	}
	for code, exp := range a.closed {
		if now.After(exp) {
			delete(a.closed, code)
		}
	}
}

// remove takes p out of the pending set; tombstone keeps its code so the
// page can say its connection closed. a.mu must be held.
func (a *Approvals) remove(p *PendingApproval, tombstone bool) bool {
	if a.pending[p.Code] != p {
		return false
	}
	delete(a.pending, p.Code)
	src := Source(p.ClientIP())
	if a.perSource[src]--; a.perSource[src] <= 0 {
		delete(a.perSource, src)
	}
	if tombstone {
		_, total := a.limits()
		if len(a.closed) >= 4*total {
			for code := range a.closed { // drop an arbitrary one: the set stays bounded
				delete(a.closed, code)
				break
			}
		}
		a.closed[p.Code] = p.Expires
	}
	if p.stop != nil {
		p.stop()
	}
	close(p.gone)
	return true
}

// end ends p without approval (its connection closed, or it gave up).
func (a *Approvals) end(p *PendingApproval) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.remove(p, true)
}

// Close ends p without approval; later attempts to approve its code say the
// connection closed. Closing an approved or ended code does nothing.
func (p *PendingApproval) Close() { p.owner.end(p) }

// Lookup returns the pending approval for code (case-insensitive), or
// ErrApprovalClosed when the connection that asked for it has gone.
func (a *Approvals) Lookup(code string) (*PendingApproval, error) {
	code = strings.ToUpper(strings.TrimSpace(code))
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	now := a.now()
	if exp, ok := a.closed[code]; ok && !now.After(exp) {
		return nil, ErrApprovalClosed
	}
	p, ok := a.pending[code]
	if !ok || now.After(p.Expires) {
		return nil, ErrApprovalUnknown
	}
	return p, nil
}

// Approve completes the approval code for id (a user who just passed OIDC
// and TOTP in the browser). Only that code's request is approved: its key,
// from its source IP, for its login@target.
func (a *Approvals) Approve(code string, id Identity) error {
	p, err := a.Lookup(code)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending[p.Code] != p {
		return ErrApprovalClosed
	}
	p.done <- id // before remove closes gone, so Wait sees the approval
	a.remove(p, false)
	if a.Window > 0 {
		a.reuse[p.reuseKey()] = approved{id: id, expires: a.now().Add(a.Window)}
	}
	a.remember(p.KeyFingerprint, id.User)
	return nil
}

// Wait blocks until the approval is given, the code ends (its connection
// closed, it expired, or it was closed) or ctx ends.
func (p *PendingApproval) Wait(ctx context.Context) (Identity, error) {
	t := time.NewTimer(time.Until(p.Expires))
	defer t.Stop()
	select {
	case id := <-p.done:
		return id, nil
	case <-p.gone:
		select {
		case id := <-p.done: // approved just as it ended
			return id, nil
		default:
		}
		return Identity{}, ErrApprovalClosed
	case <-t.C:
		return Identity{}, context.DeadlineExceeded
	case <-ctx.Done():
		return Identity{}, context.Cause(ctx)
	}
}

// Reuse returns the identity approved for this request's key, source IP and
// login@target within the window.
func (a *Approvals) Reuse(req ApprovalRequest) (Identity, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	k := req.reuseKey()
	r, ok := a.reuse[k]
	if !ok || a.now().After(r.expires) {
		delete(a.reuse, k)
		return Identity{}, false
	}
	return r.id, true
}

// maxKnown bounds the key-to-user memory.
const maxKnown = 100000

// Remember records that the key with this fingerprint belongs to user (it
// was approved for them, or carried their certificate), so a lock on user
// refuses the key before any approval code is shown.
func (a *Approvals) Remember(keyFingerprint, user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	a.remember(keyFingerprint, user)
}

func (a *Approvals) remember(fp, user string) {
	if _, ok := a.known[fp]; !ok && len(a.known) >= maxKnown {
		for k := range a.known {
			delete(a.known, k)
			break
		}
	}
	a.known[fp] = user
}

// KnownUser returns the user a key was last approved for or presented a
// certificate of.
func (a *Approvals) KnownUser(keyFingerprint string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.known[keyFingerprint]
	return u, ok
}
