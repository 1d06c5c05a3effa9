package recorder

import (
	"context"
	"fmt"
	"time"
)

// Terminations asked for on one instance of sessions that run on another:
// the web UI of any instance writes a row; every instance polls the rows
// (TerminationPoll) and ends the sessions it runs, then deletes their rows.
// A row nobody acts on (the session ended, or its instance died) is dropped
// after TerminationTTL.

// TerminationPoll is how often an instance looks for termination requests.
const TerminationPoll = time.Second

// TerminationTTL is how long an unanswered request is kept.
const TerminationTTL = 10 * time.Minute

// TerminationRequest asks the instance running a session to end it.
type TerminationRequest struct {
	SessionID   string
	Reason      string // what the session's user is told
	RequestedBy string
	Created     time.Time
}

// RequestTermination records a request to end session id, for whichever
// instance runs it. A second request for the same session keeps the first.
func (s *SessionStore) RequestTermination(ctx context.Context, r TerminationRequest) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO session_terminations(session_id, reason, requested_by, created)
		VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING`, r.SessionID, r.Reason, r.RequestedBy, r.Created.Unix())
	if err != nil {
		return fmt.Errorf("recorder: termination request: %w", err)
	}
	return nil
}

// TerminationRequests returns the pending requests, dropping those older
// than TerminationTTL at now.
func (s *SessionStore) TerminationRequests(ctx context.Context, now time.Time) ([]TerminationRequest, error) {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM session_terminations WHERE created < ?`,
		now.Add(-TerminationTTL).Unix()); err != nil {
		return nil, fmt.Errorf("recorder: termination requests: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT session_id, reason, requested_by, created FROM session_terminations`)
	if err != nil {
		return nil, fmt.Errorf("recorder: termination requests: %w", err)
	}
	defer rows.Close()
	var out []TerminationRequest
	for rows.Next() {
		var r TerminationRequest
		var created int64
		if err := rows.Scan(&r.SessionID, &r.Reason, &r.RequestedBy, &created); err != nil {
			return nil, fmt.Errorf("recorder: termination requests: %w", err)
		}
		r.Created = time.Unix(created, 0)
		out = append(out, r)
	}
	return out, rows.Err()
}

// TerminationDone deletes the request for session id (its instance ended it).
func (s *SessionStore) TerminationDone(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM session_terminations WHERE session_id = ?`, id); err != nil {
		return fmt.Errorf("recorder: termination done: %w", err)
	}
	return nil
}
