package recorder

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// Recovery. Every session and recording row names the instance that owns
// it (internal/instance). What an instance leaves open when it dies is
// sealed by whichever live instance notices first that the owner's lease
// has run out: it claims the row with a conditional UPDATE that moves the
// row to itself (only one instance can win it), then seals it. A recording
// whose final record could not be written (its store was down) stays
// "seal pending" and its owner retries the seal on every pass; if the owner
// dies first, the instance that claims its rows retries instead.

// Recovered describes a recording sealed after a crash.
type Recovered struct {
	ID, SessionID, Reason, SHA256 string
	Commands                      []Command
	// Pending is true when the seal could not be written yet (the object
	// store is unreachable); the row is ended and the seal is retried.
	Pending bool
}

const crashReason = "gateway stopped unexpectedly; recording sealed as incomplete"

// Instance is the id written as the owner of new recordings ("" when none
// was configured).
func (r *Recordings) Instance() string { return r.opts.Instance }

// Recover seals every recording left open that is not live in this process
// and not owned by this instance, whatever its owner's lease says: the
// start of a single instance on SQLite, where no other process runs.
func (r *Recordings) Recover(ctx context.Context) ([]Recovered, error) {
	return r.RecoverDead(ctx, math.MaxInt64)
}

// RecoverDead seals the open (or seal-pending) recordings of every other
// instance whose lease ended before cutoff (unix nanoseconds on the
// database's clock), and of no instance at all (rows written before
// instances existed). Each is claimed first, so two instances never seal the
// same recording.
func (r *Recordings) RecoverDead(ctx context.Context, cutoff int64) ([]Recovered, error) {
	// Two branches, each served by its partial index (open; seal pending),
	// so the pass never scans the whole table.
	const deadOwner = `(? = '' OR r.instance_id <> ?)
		AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = r.instance_id AND i.lease_until >= ?)`
	self := r.opts.Instance
	rows, err := r.db.QueryContext(ctx, `SELECT r.id, r.instance_id FROM recordings r WHERE r.ended IS NULL AND `+deadOwner+`
		UNION ALL
		SELECT r.id, r.instance_id FROM recordings r WHERE r.seal_pending = 1 AND r.ended IS NOT NULL AND `+deadOwner,
		self, self, cutoff, self, self, cutoff)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	type owned struct{ id, owner string }
	var found []owned
	for rows.Next() {
		var o owned
		if err := rows.Scan(&o.id, &o.owner); err != nil {
			rows.Close()
			return nil, fmt.Errorf("recorder: %w", err)
		}
		found = append(found, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	var out []Recovered
	for _, id := range r.takeUnsealed() {
		rec, err := r.sealClaimed(ctx, id)
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	for _, o := range found {
		if r.isLive(o.id) {
			continue
		}
		rec, won, err := r.ClaimAndSeal(ctx, o.id, o.owner)
		if err != nil {
			return out, err
		}
		if won {
			out = append(out, rec)
		}
	}
	return out, nil
}

// ClaimAndSeal takes recording id over from owner (a dead instance) and
// seals it. won is false when the recording was no longer owner's to take
// (another instance claimed or sealed it first).
func (r *Recordings) ClaimAndSeal(ctx context.Context, id, owner string) (rec Recovered, won bool, err error) {
	res, err := r.db.ExecContext(ctx, `UPDATE recordings SET instance_id = ? WHERE id = ? AND instance_id = ?
		AND (ended IS NULL OR seal_pending = 1)`, r.opts.Instance, id, owner)
	if err != nil {
		return Recovered{}, false, fmt.Errorf("recorder: claim recording: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Recovered{}, false, nil
	}
	rec, err = r.sealClaimed(ctx, id)
	return rec, true, err
}

// sealClaimed seals a claimed recording, keeping it for the next pass if
// that fails.
func (r *Recordings) sealClaimed(ctx context.Context, id string) (Recovered, error) {
	rec, err := r.sealOwned(ctx, id)
	if err != nil {
		r.mu.Lock()
		if r.unsealed == nil {
			r.unsealed = map[string]bool{}
		}
		r.unsealed[id] = true
		r.mu.Unlock()
	}
	return rec, err
}

// takeUnsealed returns (and forgets) the claimed recordings left unsealed.
func (r *Recordings) takeUnsealed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id := range r.unsealed {
		ids = append(ids, id)
	}
	r.unsealed = nil
	return ids
}

// RetryPendingSeals writes the final record of this instance's recordings
// whose seal failed (their store was down); it returns those it sealed.
func (r *Recordings) RetryPendingSeals(ctx context.Context) ([]Recovered, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id FROM recordings WHERE seal_pending = 1 AND instance_id = ?`, r.opts.Instance)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("recorder: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	var out []Recovered
	for _, id := range ids {
		rec, err := r.sealOwned(ctx, id)
		if err != nil {
			return out, err
		}
		if !rec.Pending {
			out = append(out, rec)
		}
	}
	return out, rows.Err()
}

func (r *Recordings) isLive(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for rec := range r.live {
		if rec.id == id {
			return true
		}
	}
	return false
}

// LiveSessionIDs lists the sessions whose recordings this process is
// writing.
func (r *Recordings) LiveSessionIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.live))
	for rec := range r.live {
		out = append(out, rec.info.SessionID)
	}
	return out
}

// sealOwned seals a recording this instance owns (claimed, or its own with
// a pending seal). A store that cannot be reached leaves the seal pending
// (the row ended, the reason saying so) to be retried; a recording that
// cannot be read at all is ended with the reason, as it can never be sealed.
func (r *Recordings) sealOwned(ctx context.Context, id string) (Recovered, error) {
	m, err := r.row(ctx, id)
	if err != nil {
		return Recovered{}, err
	}
	reason := crashReason
	if m.SealPending {
		reason = m.Reason
	}
	out := Recovered{ID: id, SessionID: m.SessionID, Reason: reason}
	sum, bytes, err := r.sealTorn(m, reason)
	switch {
	case err != nil && r.retryable(m, err):
		out.Pending = true
		if !m.SealPending {
			out.Reason = fmt.Sprintf("%s (seal failed: %v)", crashReason, err)
			if err := r.markPending(ctx, id, out.Reason); err != nil {
				return out, err
			}
		}
		r.log.Warn("recording seal pending: its store is unreachable; retrying", "recording", id, "session", m.SessionID, "err", err)
		return out, nil
	case err != nil:
		out.Reason = fmt.Sprintf("%s; recording unreadable: %v", reason, err)
		r.log.Error("recover recording", "recording", id, "err", err)
	case m.SealPending:
		out.Reason = reason + "; sealed as incomplete once its store was back"
	}
	out.SHA256 = sum
	if err := r.sealedRow(ctx, id, out, bytes); err != nil {
		return out, err
	}
	if m.Interactive && err == nil {
		out.Commands = r.reconstructMissed(id) // only those after the last stored live
	}
	r.log.Warn("sealed recording left open", "recording", id, "session", m.SessionID, "reason", out.Reason)
	return out, nil
}

// retryable reports whether sealing m failed because its store could not
// be reached or written (an object store down, a full disk: worth
// retrying), not because the recording is damaged, gone or elsewhere.
func (r *Recordings) retryable(m recRow, err error) bool {
	if errors.Is(err, ErrRecordingCorrupt) || errors.Is(err, os.ErrNotExist) {
		return false
	}
	return !isS3File(m.file) || r.s3 != nil
}

// markPending ends a claimed recording whose seal could not be written.
func (r *Recordings) markPending(ctx context.Context, id, reason string) error {
	_, err := r.db.ExecContext(ctx, `UPDATE recordings SET ended = ?, complete = 0, reason = ?, seal_pending = 1
		WHERE id = ? AND instance_id = ?`, r.opts.Now().UnixNano(), reason, id, r.opts.Instance)
	if err != nil {
		return fmt.Errorf("recorder: seal row: %w", err)
	}
	return nil
}

// sealedRow records a recovery seal: incomplete, with its hash.
func (r *Recordings) sealedRow(ctx context.Context, id string, rec Recovered, bytes int64) error {
	now := r.opts.Now().UnixNano()
	_, err := r.db.ExecContext(ctx, `UPDATE recordings SET ended = COALESCE(ended, ?), complete = 0, reason = ?, sha256 = ?,
		bytes = ?, seal_pending = 0 WHERE id = ? AND instance_id = ?`, now, rec.Reason, rec.SHA256, bytes, id, r.opts.Instance)
	if err != nil {
		return fmt.Errorf("recorder: seal row: %w", err)
	}
	return nil
}

// OpenSession is a session row left open, with the instance that owns it.
type OpenSession struct {
	Session
	Instance string
}

// OpenOfDead lists the open sessions owned by instances other than self
// whose lease ended before cutoff (unix nanoseconds on the database's
// clock), or by no instance.
func (s *SessionStore) OpenOfDead(ctx context.Context, cutoff int64) ([]OpenSession, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessionColumns+`, instance_id FROM sessions
		WHERE end_at IS NULL AND (? = '' OR instance_id <> ?)
		AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = sessions.instance_id AND i.lease_until >= ?)`,
		s.instance, s.instance, cutoff)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	defer rows.Close()
	var out []OpenSession
	for rows.Next() {
		var o OpenSession
		var err error
		if o.Session, err = scanSession(rows, &o.Instance); err != nil {
			return nil, fmt.Errorf("recorder: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// OpenElsewhere counts user's open sessions owned by other instances whose
// lease is still running at cutoff (unix nanoseconds on the database's
// clock): the sessions max_sessions must count besides this instance's own.
func (s *SessionStore) OpenElsewhere(ctx context.Context, user string, cutoff int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions
		WHERE user_name = ? AND end_at IS NULL AND instance_id <> ?
		AND EXISTS (SELECT 1 FROM instances i WHERE i.id = sessions.instance_id AND i.lease_until >= ?)`,
		user, s.instance, cutoff).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("recorder: count open sessions elsewhere: %w", err)
	}
	return n, nil
}

// Claim takes open session id over from owner (a dead instance); it reports
// whether this instance won it.
func (s *SessionStore) Claim(ctx context.Context, id, owner string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET instance_id = ? WHERE id = ? AND instance_id = ? AND end_at IS NULL`,
		s.instance, id, owner)
	if err != nil {
		return false, fmt.Errorf("recorder: claim session: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// EndClaimed ends a session this instance claimed, with reason and its
// recording's hash.
func (s *SessionStore) EndClaimed(ctx context.Context, r Session, end time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE sessions SET end_at = ?, end_reason = ?, recording_complete = 0,
		recording_sha256 = ? WHERE id = ? AND end_at IS NULL AND instance_id = ?`,
		end.UTC().UnixNano(), r.EndReason, r.RecordingSHA256, r.ID, s.instance)
	if err != nil {
		return fmt.Errorf("recorder: session end row: %w", err)
	}
	return nil
}

// Owner returns the instance that owns session id, and whether it is
// still open.
func (s *SessionStore) Owner(ctx context.Context, id string) (owner string, open bool, err error) {
	var end *int64
	err = s.db.QueryRowContext(ctx, `SELECT instance_id, end_at FROM sessions WHERE id = ?`, id).Scan(&owner, &end)
	if err != nil {
		return "", false, fmt.Errorf("recorder: %w", err)
	}
	return owner, end == nil, nil
}
