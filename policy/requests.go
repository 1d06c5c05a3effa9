package policy

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/usererr"
)

// Just-in-time access: a user asks for a requestable role for a while with a
// reason (Requests.Create); reviewers named by role approve or deny it; once
// enough different reviewers approved, the role is granted until the request's
// duration has passed from the last approval. Grants are an input of every
// decision (Engine.WithGrants) and are read from memory, refreshed from the
// database by Refresh and after every change made here.

// Request states.
const (
	RequestPending  = "pending"
	RequestApproved = "approved"
	RequestDenied   = "denied"
	RequestExpired  = "expired"
)

// Limits on requests.
const (
	// DefaultMaxRequestTTL caps a request's duration when its role sets no
	// options.max_request_ttl.
	DefaultMaxRequestTTL = 8 * time.Hour
	// PendingTTL is how long a request waits for reviewers before it expires.
	PendingTTL = 24 * time.Hour
	// MaxPendingPerUser bounds one user's pending requests.
	MaxPendingPerUser = 5
	// MinRequestTTL is the shortest duration a request may ask for.
	MinRequestTTL = 10 * time.Second
	// maxReason caps the requester's and reviewer's reasons.
	maxReason = 500
)

// Errors users see (the text after "policy: " is the one-line message).
var (
	ErrSelfApproval     = usererr.New("policy", "you cannot approve or deny your own access request")
	ErrNotReviewer      = usererr.New("policy", "none of your roles may review requests for this role")
	ErrAlreadyApproved  = usererr.New("policy", "you have already approved this request; it needs another reviewer")
	ErrNotPending       = usererr.New("policy", "this request is no longer pending")
	ErrUnknownRequest   = usererr.New("policy", "unknown access request")
	ErrTooManyPending   = usererr.New("policy", "you have too many pending access requests; wait for a decision first")
	ErrRequestNeedsWhy  = usererr.New("policy", "an access request needs a reason")
	ErrRequestTooLong   = usererr.New("policy", "a reason is at most 500 characters")
	ErrRequestBadLength = usererr.New("policy", "ask for a duration of at least 10s")
)

// AccessRequest is one request with its decision.
type AccessRequest struct {
	ID, User, Role, Reason string
	Duration               time.Duration
	State                  string
	Created, Decided       time.Time
	Expires                time.Time // grant end (approved) or pending end
	Approvers              []string
	Required               int // approvals required
	DeniedBy, Note         string
}

// Requestable returns the role if it can be requested.
func (e *ruleSet) Requestable(role string) (Role, bool) {
	r, ok := e.roles[role]
	return r, ok && r.Options.Requestable
}

// RequestableRoles returns the names of the requestable roles, sorted.
func (e *ruleSet) RequestableRoles() []string {
	var out []string
	for name, r := range e.roles {
		if r.Options.Requestable {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// ApprovalsRequired is how many reviewers must approve a request for role.
func (e *ruleSet) ApprovalsRequired(role string) int {
	if n := e.roles[role].Options.ApprovalsRequired; n > 0 {
		return n
	}
	return 1
}

// MaxRequestTTL is the longest duration a request for role may ask for.
func (e *ruleSet) MaxRequestTTL(role string) time.Duration {
	if d := e.roles[role].Options.MaxRequestTTL; d > 0 {
		return d
	}
	return DefaultMaxRequestTTL
}

// CanReview reports whether a user (through roles bound by the
// configuration; a grant never makes a reviewer) may review requests for
// role, and which bound role allows it.
func (e *ruleSet) CanReview(user string, groups []string, role string) (string, bool) {
	for _, name := range e.BoundRoles(user, groups) {
		if contains(e.roles[name].Options.ReviewRequests, role) {
			return name, true
		}
	}
	return "", false
}

// RequestHint returns a requestable role that would allow req (the user's
// deny rules still apply), or "" when none would. A user whose roles
// already allow the login on the target (a command refusal) gets no hint:
// the refusal itself says what to change.
func (e *ruleSet) RequestHint(req Request) string {
	for _, l := range e.Logins(req.User, req.Groups, req.Target) {
		if l == "*" || l == req.Login {
			return ""
		}
	}
	have := e.Roles(req.User, req.Groups)
	for _, name := range e.RequestableRoles() {
		if contains(have, name) {
			continue
		}
		roles := append(append([]string(nil), have...), name)
		sort.Strings(roles)
		if e.check(req, roles).Allowed {
			return name
		}
	}
	return ""
}

// RequestCommand is the command line that asks for role.
func RequestCommand(role string) string {
	return fmt.Sprintf("gatehouse request --role %s --for 1h --reason '...'", role)
}

// Requests stores access requests and holds the grants in force in memory.
type Requests struct {
	db *sql.DB
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// mu protects grants.
	mu     sync.Mutex
	grants map[string]map[string]time.Time // user -> role -> until
}

// NewRequests returns the request store over db. Call Refresh to load the
// grants in force.
func NewRequests(db *sql.DB) *Requests {
	return &Requests{db: db, grants: map[string]map[string]time.Time{}}
}

func (q *Requests) now() time.Time {
	if q.Now != nil {
		return q.Now()
	}
	return time.Now()
}

// GrantedRoles returns the roles user holds through approved requests now.
// Expiry is checked at every call, so a grant ends on time even before the
// next Refresh.
func (q *Requests) GrantedRoles(user string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	var out []string
	for role, until := range q.grants[user] {
		if now.Before(until) {
			out = append(out, role)
		}
	}
	sort.Strings(out)
	return out
}

// GrantUntil returns when user's grant of role ends (zero: no grant).
func (q *Requests) GrantUntil(user, role string) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if until := q.grants[user][role]; q.now().Before(until) {
		return until
	}
	return time.Time{}
}

// Refresh reloads the grants in force from the database (another gateway
// on the same database, or the CLI, may have changed them). On error the
// grants held stay, still bounded by their expiry.
func (q *Requests) Refresh(ctx context.Context) error {
	rows, err := q.db.QueryContext(ctx, `SELECT user_name, role, expires FROM access_requests WHERE state = ? AND expires > ?`,
		RequestApproved, q.now().Unix())
	if err != nil {
		return fmt.Errorf("policy: load grants: %w", err)
	}
	defer rows.Close()
	g := map[string]map[string]time.Time{}
	for rows.Next() {
		var user, role string
		var until int64
		if err := rows.Scan(&user, &role, &until); err != nil {
			return fmt.Errorf("policy: load grants: %w", err)
		}
		if g[user] == nil {
			g[user] = map[string]time.Time{}
		}
		if t := time.Unix(until, 0); t.After(g[user][role]) {
			g[user][role] = t
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("policy: load grants: %w", err)
	}
	q.mu.Lock()
	q.grants = g
	q.mu.Unlock()
	return nil
}

func newRequestID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// Create files a request by user for role for d with reason.
func (q *Requests) Create(ctx context.Context, e *Engine, user, role string, d time.Duration, reason string) (AccessRequest, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return AccessRequest{}, ErrRequestNeedsWhy
	case len(reason) > maxReason || strings.ContainsAny(reason, "\r\n\x00"):
		return AccessRequest{}, ErrRequestTooLong
	case d < MinRequestTTL:
		return AccessRequest{}, ErrRequestBadLength
	}
	if _, ok := e.Requestable(role); !ok {
		return AccessRequest{}, usererr.New("policy", fmt.Sprintf("role %q cannot be requested (requestable roles: %s)", role, strings.Join(e.RequestableRoles(), ", ")))
	}
	if max := e.MaxRequestTTL(role); d > max {
		return AccessRequest{}, usererr.New("policy", fmt.Sprintf("role %s can be requested for at most %s", role, max))
	}
	var n int
	if err := q.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM access_requests WHERE user_name = ? AND state = ? AND expires > ?`,
		user, RequestPending, q.now().Unix()).Scan(&n); err != nil {
		return AccessRequest{}, fmt.Errorf("policy: count requests: %w", err)
	}
	if n >= MaxPendingPerUser {
		return AccessRequest{}, ErrTooManyPending
	}
	now := q.now()
	ar := AccessRequest{ID: newRequestID(), User: user, Role: role, Reason: reason, Duration: d, State: RequestPending,
		Created: now, Expires: now.Add(PendingTTL), Required: e.ApprovalsRequired(role)}
	_, err := q.db.ExecContext(ctx, `INSERT INTO access_requests(id, user_name, role, reason, duration, state, created, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, ar.ID, user, role, reason, int64(d/time.Second), RequestPending, now.Unix(), ar.Expires.Unix())
	if err != nil {
		return AccessRequest{}, fmt.Errorf("policy: store request: %w", err)
	}
	return ar, nil
}

// Get returns one request with its approvers.
func (q *Requests) Get(ctx context.Context, e *Engine, id string) (AccessRequest, error) {
	list, err := q.query(ctx, e, `WHERE id = ?`, id)
	if err != nil {
		return AccessRequest{}, err
	}
	if len(list) == 0 {
		return AccessRequest{}, ErrUnknownRequest
	}
	return list[0], nil
}

// ForUser returns user's requests, newest first (at most 50).
func (q *Requests) ForUser(ctx context.Context, e *Engine, user string) ([]AccessRequest, error) {
	return q.query(ctx, e, `WHERE user_name = ? ORDER BY created DESC, id LIMIT 50`, user)
}

// Reviewable returns the pending requests reviewer may decide: for a role
// their bound roles review, and not their own.
func (q *Requests) Reviewable(ctx context.Context, e *Engine, reviewer string, groups []string) ([]AccessRequest, error) {
	all, err := q.query(ctx, e, `WHERE state = ? AND expires > ? ORDER BY created, id LIMIT 200`, RequestPending, q.now().Unix())
	if err != nil {
		return nil, err
	}
	var out []AccessRequest
	for _, ar := range all {
		if _, ok := e.CanReview(reviewer, groups, ar.Role); ok && ar.User != reviewer {
			out = append(out, ar)
		}
	}
	return out, nil
}

func (q *Requests) query(ctx context.Context, e *Engine, where string, args ...any) ([]AccessRequest, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT id, user_name, role, reason, duration, state, created, decided, expires, denied_by, note
		FROM access_requests `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("policy: read requests: %w", err)
	}
	var out []AccessRequest
	for rows.Next() {
		var ar AccessRequest
		var dur, created, decided, expires int64
		if err := rows.Scan(&ar.ID, &ar.User, &ar.Role, &ar.Reason, &dur, &ar.State, &created, &decided, &expires, &ar.DeniedBy, &ar.Note); err != nil {
			rows.Close()
			return nil, fmt.Errorf("policy: read requests: %w", err)
		}
		ar.Duration = time.Duration(dur) * time.Second
		ar.Created, ar.Expires = time.Unix(created, 0).UTC(), time.Unix(expires, 0).UTC()
		if decided > 0 {
			ar.Decided = time.Unix(decided, 0).UTC()
		}
		ar.Required = e.ApprovalsRequired(ar.Role)
		if ar.State == RequestPending && !q.now().Before(ar.Expires) {
			ar.State = RequestExpired
		}
		if ar.State == RequestApproved && !q.now().Before(ar.Expires) {
			ar.State = RequestExpired
		}
		out = append(out, ar)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Approvers, err = q.approvers(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (q *Requests) approvers(ctx context.Context, id string) ([]string, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT approver FROM access_approvals WHERE request_id = ? ORDER BY created, approver`, id)
	if err != nil {
		return nil, fmt.Errorf("policy: read approvals: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// reviewable loads a pending request and checks that reviewer may decide
// it: not their own, and one of their bound roles reviews its role.
func (q *Requests) reviewable(ctx context.Context, e *Engine, id, reviewer string, groups []string) (AccessRequest, error) {
	ar, err := q.Get(ctx, e, id)
	if err != nil {
		return AccessRequest{}, err
	}
	if ar.User == reviewer {
		return AccessRequest{}, ErrSelfApproval
	}
	if _, ok := e.CanReview(reviewer, groups, ar.Role); !ok {
		return AccessRequest{}, ErrNotReviewer
	}
	if ar.State != RequestPending {
		return AccessRequest{}, ErrNotPending
	}
	return ar, nil
}

// Approve records reviewer's approval. Once the role's approvals_required
// different reviewers approved, the request becomes a grant until now plus
// its duration; granted reports that.
func (q *Requests) Approve(ctx context.Context, e *Engine, id, reviewer string, groups []string) (ar AccessRequest, granted bool, err error) {
	ar, err = q.reviewable(ctx, e, id, reviewer, groups)
	if err != nil {
		return AccessRequest{}, false, err
	}
	if contains(ar.Approvers, reviewer) {
		return ar, false, ErrAlreadyApproved
	}
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return ar, false, fmt.Errorf("policy: approve: %w", err)
	}
	defer tx.Rollback()
	now := q.now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO access_approvals(request_id, approver, created) VALUES (?, ?, ?)`, id, reviewer, now.Unix()); err != nil {
		return ar, false, ErrAlreadyApproved
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM access_approvals WHERE request_id = ?`, id).Scan(&n); err != nil {
		return ar, false, fmt.Errorf("policy: approve: %w", err)
	}
	if n >= ar.Required {
		ar.State, ar.Decided, ar.Expires = RequestApproved, now, now.Add(ar.Duration)
		res, err := tx.ExecContext(ctx, `UPDATE access_requests SET state = ?, decided = ?, expires = ? WHERE id = ? AND state = ?`,
			RequestApproved, now.Unix(), ar.Expires.Unix(), id, RequestPending)
		if err != nil {
			return ar, false, fmt.Errorf("policy: approve: %w", err)
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return ar, false, ErrNotPending
		}
		granted = true
	}
	if err := tx.Commit(); err != nil {
		return ar, false, fmt.Errorf("policy: approve: %w", err)
	}
	ar.Approvers = append(ar.Approvers, reviewer)
	if granted {
		q.mu.Lock()
		if q.grants[ar.User] == nil {
			q.grants[ar.User] = map[string]time.Time{}
		}
		if ar.Expires.After(q.grants[ar.User][ar.Role]) {
			q.grants[ar.User][ar.Role] = ar.Expires
		}
		q.mu.Unlock()
	}
	return ar, granted, nil
}

// Deny refuses a pending request with the reviewer's note.
func (q *Requests) Deny(ctx context.Context, e *Engine, id, reviewer string, groups []string, note string) (AccessRequest, error) {
	ar, err := q.reviewable(ctx, e, id, reviewer, groups)
	if err != nil {
		return AccessRequest{}, err
	}
	note = strings.TrimSpace(note)
	if len(note) > maxReason || strings.ContainsAny(note, "\r\n\x00") {
		return AccessRequest{}, ErrRequestTooLong
	}
	now := q.now()
	res, err := q.db.ExecContext(ctx, `UPDATE access_requests SET state = ?, decided = ?, denied_by = ?, note = ? WHERE id = ? AND state = ?`,
		RequestDenied, now.Unix(), reviewer, note, id, RequestPending)
	if err != nil {
		return AccessRequest{}, fmt.Errorf("policy: deny: %w", err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return AccessRequest{}, ErrNotPending
	}
	ar.State, ar.Decided, ar.DeniedBy, ar.Note = RequestDenied, now, reviewer, note
	return ar, nil
}

// ExpireDue marks approved requests whose grant ended, and pending requests
// nobody decided in time, as expired, and returns them (each is audited as
// request.expired by the caller). Grants are refreshed after.
func (q *Requests) ExpireDue(ctx context.Context, e *Engine) ([]AccessRequest, error) {
	now := q.now().Unix()
	due, err := q.query(ctx, e, `WHERE state IN (?, ?) AND expires <= ?`, RequestApproved, RequestPending, now)
	if err != nil {
		return nil, err
	}
	var out []AccessRequest
	for _, ar := range due {
		res, err := q.db.ExecContext(ctx, `UPDATE access_requests SET state = ? WHERE id = ? AND state IN (?, ?) AND expires <= ?`,
			RequestExpired, ar.ID, RequestApproved, RequestPending, now)
		if err != nil {
			return out, fmt.Errorf("policy: expire requests: %w", err)
		}
		if k, _ := res.RowsAffected(); k == 1 { // another gateway may have done it
			ar.State = RequestExpired
			out = append(out, ar)
		}
	}
	return out, q.Refresh(ctx)
}
