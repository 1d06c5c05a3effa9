package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
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
//
// Pending approvals are rows in the shared database (table ssh_approvals),
// so the browser may approve on any instance: the instance holding the ssh
// connection (the row's owner) learns of it at once when the approval is
// made on itself, and by polling its own approved rows every Poll
// otherwise. The code is never stored, only an HMAC of it.
type Approvals struct {
	// DB is the shared database; required.
	DB *sql.DB
	// CodeKey keys the HMAC stored instead of each code (derived from the
	// master key). Nil means plain SHA-256.
	CodeKey []byte
	// Instance names this instance as the owner of the codes it shows;
	// empty means a random id chosen on first use.
	Instance string
	// Log receives database failures; nil means slog.Default.
	Log *slog.Logger
	// Poll is how often this instance looks for approvals of its codes
	// made on other instances; zero means ApprovalPoll.
	Poll time.Duration

	// BaseURL is the gateway's public web URL.
	BaseURL string
	// Window is how long an approval is reused for the same key, source IP
	// and login@target. Zero means no reuse.
	Window time.Duration
	// MaxPerSource bounds the codes pending at once from one source (an IPv4
	// address or an IPv6 /64), across every instance. Zero means 10.
	MaxPerSource int
	// MaxPending bounds the codes pending at once in total, across every
	// instance. Zero means 1000.
	MaxPending int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// mu protects the following.
	mu      sync.Mutex
	waiters map[string]*PendingApproval // this instance's pending codes, by code hash
	polling bool
	known   map[string]string // key fingerprint -> user it presented a certificate of
}

// ApprovalPoll is how often an instance looks for approvals made on other
// instances of the codes it shows: the bound on how long an ssh connection
// waits after the approval on another instance (plus one query).
const ApprovalPoll = 250 * time.Millisecond

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

// PendingApproval is one login waiting for the browser. Its lifecycle:
// Begin creates it; then exactly one of Approve (on any instance), the
// connection's context ending, Close or expiry ends it. One returned by
// Lookup describes the row only: Wait and Close are for the one Begin
// returned.
type PendingApproval struct {
	ApprovalRequest
	Code    string // what the user compares, e.g. "KQ7F-3XPA"
	URL     string
	Created time.Time
	Expires time.Time

	owner *Approvals
	hash  string
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
	ErrApprovalsDown   = usererr.New("auth", "browser approvals are unavailable right now; try again shortly")
)

// ApprovalTTL is how long a code can be approved at most.
const ApprovalTTL = 5 * time.Minute

// Caps on untrusted strings kept with a pending approval.
const maxClientVersion = 255

// Approval row states.
const (
	apPending  = "pending"
	apApproved = "approved"
	apUsed     = "used"
	apClosed   = "closed"
)

func (a *Approvals) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Approvals) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
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

// normalizeCode is the canonical form of a code a user typed or followed.
func normalizeCode(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// codeHash is what the database keeps instead of the code.
func (a *Approvals) codeHash(code string) string {
	if a.CodeKey == nil {
		sum := sha256.Sum256([]byte("gatehouse ssh approval code\x00" + code))
		return hex.EncodeToString(sum[:])
	}
	m := hmac.New(sha256.New, a.CodeKey)
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

// init sets up the local state. a.mu must be held.
func (a *Approvals) init() {
	if a.waiters == nil {
		a.waiters, a.known = map[string]*PendingApproval{}, map[string]string{}
		if a.Instance == "" {
			a.Instance = "gw-" + strings.ToLower(newApprovalCode())
		}
	}
}

// owner is this instance's id.
func (a *Approvals) ownerID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	return a.Instance
}

// dbContext bounds a database call made without a caller's context.
func dbContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// Begin starts an approval for req. ctx is the asking connection's context:
// when it ends, the code can no longer be approved.
func (a *Approvals) Begin(ctx context.Context, req ApprovalRequest) (*PendingApproval, error) {
	if len(req.ClientVersion) > maxClientVersion {
		req.ClientVersion = req.ClientVersion[:maxClientVersion]
	}
	owner := a.ownerID()
	now := a.now()
	p := &PendingApproval{ApprovalRequest: req, Created: now, Expires: now.Add(ApprovalTTL),
		owner: a, done: make(chan Identity, 1), gone: make(chan struct{})}
	for try := 0; ; try++ {
		p.Code = newApprovalCode()
		p.hash = a.codeHash(p.Code)
		err := a.insert(ctx, owner, p)
		if err == nil {
			break
		}
		if errors.Is(err, ErrApprovalsSource) || errors.Is(err, ErrApprovalsFull) || try == 3 {
			return nil, err
		}
	}
	p.URL = strings.TrimRight(a.BaseURL, "/") + "/approve/" + p.Code
	a.mu.Lock()
	a.waiters[p.hash] = p
	a.startPolling()
	p.stop = context.AfterFunc(ctx, func() { a.end(p) }) // runs on its own goroutine, after Unlock
	a.mu.Unlock()
	return p, nil
}

// insert adds p's row after checking the caps, in one transaction that
// holds the approvals lock (other instances wait for it).
func (a *Approvals) insert(ctx context.Context, owner string, p *PendingApproval) error {
	// The row is written even if the connection has just closed: its
	// context's watch then closes it at once, as for any other code.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	tx, err := a.DB.BeginTx(ctx, nil)
	if err != nil {
		return a.dbFailed("begin approval", err)
	}
	defer tx.Rollback()
	if err := store.LockTx(ctx, a.DB, tx, store.ApprovalLock); err != nil {
		return a.dbFailed("begin approval", err)
	}
	now := p.Created.UnixNano()
	if _, err := tx.ExecContext(ctx, `DELETE FROM ssh_approvals WHERE expires < ? AND reuse_until < ?`, now, now); err != nil {
		return a.dbFailed("sweep approvals", err)
	}
	perSource, total := a.limits()
	src := Source(p.ClientIP())
	var nSource, nTotal int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ssh_approvals WHERE state = ? AND source = ? AND expires >= ?`,
		apPending, src, now).Scan(&nSource); err != nil {
		return a.dbFailed("count approvals", err)
	}
	if nSource >= perSource {
		return ErrApprovalsSource
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ssh_approvals WHERE state = ? AND expires >= ?`,
		apPending, now).Scan(&nTotal); err != nil {
		return a.dbFailed("count approvals", err)
	}
	if nTotal >= total {
		return ErrApprovalsFull
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ssh_approvals(code_hash, owner, state, key_fingerprint, client_addr,
		client_ip, source, client_version, login, target, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.hash, owner, apPending, p.KeyFingerprint, p.ClientAddr, p.ClientIP(), src, p.ClientVersion, p.Login, p.Target,
		now, p.Expires.UnixNano()); err != nil {
		return a.dbFailed("insert approval", err)
	}
	if err := tx.Commit(); err != nil {
		return a.dbFailed("insert approval", err)
	}
	return nil
}

// dbFailed logs a database failure for the operator and returns the error
// users see.
func (a *Approvals) dbFailed(what string, err error) error {
	a.log().Error("ssh approvals: "+what, "err", err)
	return fmt.Errorf("%w (%s)", ErrApprovalsDown, what)
}

// end ends p without approval (its connection closed, or it gave up): its
// row becomes a tombstone until it would have expired, so the page can say
// the connection closed. An approval that won the race stays.
func (a *Approvals) end(p *PendingApproval) {
	ctx, cancel := dbContext()
	defer cancel()
	if _, err := a.DB.ExecContext(ctx, `UPDATE ssh_approvals SET state = ? WHERE code_hash = ? AND state = ?`,
		apClosed, p.hash, apPending); err != nil {
		a.log().Error("ssh approvals: close code", "err", err)
	}
	a.release(p, nil)
}

// release takes p out of the local waiters; with id it delivers the
// approval first. It reports whether p was still waiting.
func (a *Approvals) release(p *PendingApproval, id *Identity) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.waiters[p.hash] != p {
		return false
	}
	if id != nil {
		p.done <- *id // before gone closes, so Wait sees the approval
	}
	delete(a.waiters, p.hash)
	if p.stop != nil {
		p.stop()
	}
	close(p.gone)
	return true
}

// Close ends p without approval; later attempts to approve its code say the
// connection closed. Closing an approved or ended code does nothing.
func (p *PendingApproval) Close() {
	if p.owner != nil && p.gone != nil {
		p.owner.end(p)
	}
}

// Lookup returns the pending approval for code (case-insensitive) from
// whichever instance shows it, or ErrApprovalClosed when the connection that
// asked for it has gone.
func (a *Approvals) Lookup(code string) (*PendingApproval, error) {
	code = normalizeCode(code)
	want := a.codeHash(code)
	ctx, cancel := dbContext()
	defer cancel()
	var (
		p                = &PendingApproval{Code: code}
		hash, state      string
		created, expires int64
		login, tgt, cv   string
		fp, addr         string
	)
	err := a.DB.QueryRowContext(ctx, `SELECT code_hash, state, key_fingerprint, client_addr, client_version, login,
		target, created, expires FROM ssh_approvals WHERE code_hash = ?`, want).Scan(&hash, &state, &fp, &addr, &cv,
		&login, &tgt, &created, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, ErrApprovalUnknown
	case err != nil:
		return nil, a.dbFailed("look up code", err)
	}
	if subtle.ConstantTimeCompare([]byte(hash), []byte(want)) != 1 {
		return nil, ErrApprovalUnknown
	}
	now := a.now().UnixNano()
	if now > expires {
		return nil, ErrApprovalUnknown
	}
	switch state {
	case apClosed:
		return nil, ErrApprovalClosed
	case apPending:
	default:
		return nil, ErrApprovalUnknown
	}
	p.ApprovalRequest = ApprovalRequest{KeyFingerprint: fp, ClientAddr: addr, ClientVersion: cv, Login: login, Target: tgt}
	p.Created, p.Expires, p.hash = time.Unix(0, created), time.Unix(0, expires), hash
	p.URL = strings.TrimRight(a.BaseURL, "/") + "/approve/" + code
	return p, nil
}

// Approve completes the approval code for id (a user who just passed OIDC
// and TOTP in the browser), on whichever instance holds its connection.
// Only that code's request is approved: its key, from its source IP, for
// its login@target.
func (a *Approvals) Approve(code string, id Identity) error {
	code = normalizeCode(code)
	hash := a.codeHash(code)
	idJSON, err := json.Marshal(id)
	if err != nil {
		return fmt.Errorf("auth: approval: %w", err)
	}
	now := a.now()
	var reuseUntil int64
	if a.Window > 0 {
		reuseUntil = now.Add(a.Window).UnixNano()
	}
	ctx, cancel := dbContext()
	defer cancel()
	res, err := a.DB.ExecContext(ctx, `UPDATE ssh_approvals SET state = ?, identity = ?, reuse_until = ?
		WHERE code_hash = ? AND state = ? AND expires >= ?`, apApproved, string(idJSON), reuseUntil, hash, apPending, now.UnixNano())
	if err != nil {
		return a.dbFailed("approve code", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		if _, lerr := a.Lookup(code); lerr != nil {
			return lerr
		}
		return ErrApprovalClosed
	}
	a.mu.Lock()
	a.init()
	p := a.waiters[hash]
	a.mu.Unlock()
	if p != nil && a.release(p, &id) { // the connection waits here: no need to wait for the poll
		a.markUsed(ctx, hash)
	}
	var fp string
	if err := a.DB.QueryRowContext(ctx, `SELECT key_fingerprint FROM ssh_approvals WHERE code_hash = ?`, hash).Scan(&fp); err != nil {
		a.log().Error("ssh approvals: read approved key", "err", err)
		return nil // approved; only the key-to-user memory is missing
	}
	a.storeKeyUser(ctx, fp, id.User)
	return nil
}

// markUsed records that the owner released the connection of an approved
// code, so its poll stops returning it.
func (a *Approvals) markUsed(ctx context.Context, hash string) {
	if _, err := a.DB.ExecContext(ctx, `UPDATE ssh_approvals SET state = ? WHERE code_hash = ? AND state = ?`,
		apUsed, hash, apApproved); err != nil {
		a.log().Error("ssh approvals: mark used", "err", err)
	}
}

// startPolling starts the poll of this instance's approved codes unless it
// runs. a.mu must be held.
func (a *Approvals) startPolling() {
	if a.polling {
		return
	}
	a.polling = true
	go a.poll()
}

// poll releases this instance's connections whose codes were approved on
// another instance, every Poll, while any code is waiting here.
func (a *Approvals) poll() {
	every := a.Poll
	if every <= 0 {
		every = ApprovalPoll
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		a.mu.Lock()
		if len(a.waiters) == 0 {
			a.polling = false
			a.mu.Unlock()
			return
		}
		owner := a.Instance
		a.mu.Unlock()
		a.pollOnce(owner)
	}
}

// pollOnce delivers the approvals of this instance's codes found in the
// database.
func (a *Approvals) pollOnce(owner string) {
	ctx, cancel := dbContext()
	defer cancel()
	rows, err := a.DB.QueryContext(ctx, `SELECT code_hash, identity FROM ssh_approvals WHERE owner = ? AND state = ?`,
		owner, apApproved)
	if err != nil {
		a.log().Error("ssh approvals: poll", "err", err)
		return
	}
	type found struct{ hash, id string }
	var fs []found
	for rows.Next() {
		var f found
		if err := rows.Scan(&f.hash, &f.id); err != nil {
			rows.Close()
			a.log().Error("ssh approvals: poll", "err", err)
			return
		}
		fs = append(fs, f)
	}
	rows.Close()
	for _, f := range fs {
		var id Identity
		if err := json.Unmarshal([]byte(f.id), &id); err != nil {
			a.log().Error("ssh approvals: approved identity unreadable", "err", err)
			continue
		}
		a.mu.Lock()
		p := a.waiters[f.hash]
		a.mu.Unlock()
		if p != nil {
			a.release(p, &id)
		}
		a.markUsed(ctx, f.hash) // released now, or its connection is gone
	}
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

// Reuse returns the identity approved, on any instance, for this request's
// key, source IP and login@target within the window. A database failure
// means no reuse (the user is asked to approve).
func (a *Approvals) Reuse(req ApprovalRequest) (Identity, bool) {
	if a.Window <= 0 {
		return Identity{}, false
	}
	ctx, cancel := dbContext()
	defer cancel()
	var idJSON string
	err := a.DB.QueryRowContext(ctx, `SELECT identity FROM ssh_approvals WHERE key_fingerprint = ? AND client_ip = ?
		AND login = ? AND target = ? AND state IN (?, ?) AND reuse_until > ? ORDER BY reuse_until DESC LIMIT 1`,
		req.KeyFingerprint, req.ClientIP(), req.Login, req.Target, apApproved, apUsed, a.now().UnixNano()).Scan(&idJSON)
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			a.log().Error("ssh approvals: reuse", "err", err)
		}
		return Identity{}, false
	}
	var id Identity
	if err := json.Unmarshal([]byte(idJSON), &id); err != nil {
		a.log().Error("ssh approvals: approved identity unreadable", "err", err)
		return Identity{}, false
	}
	return id, true
}

// maxKnown bounds the key-to-user memory of certificate keys.
const maxKnown = 100000

// Remember records that the key with this fingerprint belongs to user (it
// carried their certificate), so a lock on user refuses the key before any
// approval code is shown. Certificate keys are remembered by this instance
// only (one is made per login); keys approved in the browser are stored
// for every instance by Approve.
func (a *Approvals) Remember(keyFingerprint, user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	if _, ok := a.known[keyFingerprint]; !ok && len(a.known) >= maxKnown {
		for k := range a.known {
			delete(a.known, k)
			break
		}
	}
	a.known[keyFingerprint] = user
}

// storeKeyUser records, for every instance, the user a plain key was
// approved for.
func (a *Approvals) storeKeyUser(ctx context.Context, fp, user string) {
	if _, err := a.DB.ExecContext(ctx, `INSERT INTO ssh_key_users(key_fingerprint, user_name, updated) VALUES (?, ?, ?)
		ON CONFLICT (key_fingerprint) DO UPDATE SET user_name = excluded.user_name, updated = excluded.updated`,
		fp, user, a.now().Unix()); err != nil {
		a.log().Error("ssh approvals: remember key", "err", err)
	}
}

// KnownUser returns the user a key was last approved for (on any instance)
// or presented a certificate of (on this one).
func (a *Approvals) KnownUser(keyFingerprint string) (string, bool) {
	ctx, cancel := dbContext()
	defer cancel()
	var u string
	err := a.DB.QueryRowContext(ctx, `SELECT user_name FROM ssh_key_users WHERE key_fingerprint = ?`, keyFingerprint).Scan(&u)
	if err == nil {
		return u, true
	}
	if !errors.Is(err, sql.ErrNoRows) {
		a.log().Error("ssh approvals: known key", "err", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.known[keyFingerprint]
	return u, ok
}
