package recorder

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SessionStore writes the start and end row of every session (one session =
// one SSH session channel on a target) to the sessions table.
type SessionStore struct {
	db *sql.DB
}

// NewSessionStore returns a SessionStore over db.
func NewSessionStore(db *sql.DB) *SessionStore { return &SessionStore{db: db} }

// Session is one session row.
type Session struct {
	ID                string
	User              string
	ClientAddr        string
	ClientVersion     string
	KeyFingerprint    string
	UserCertSerial    uint64
	Target            string
	TargetKind        string // ssh | docker
	Login             string
	Mode              string // direct | proxyjump
	Kind              string // shell | exec | subsystem:<name>
	Command           string
	SessionCertSerial uint64
	Start             time.Time

	// Set when the session has ended.
	End               time.Time
	ExitStatus        *int
	ExitSignal        string
	EndReason         string
	BytesIn           int64 // client to target
	BytesOut          int64 // target to client
	RecordingID       string
	RecordingComplete bool
	RecordingSHA256   string
}

// Start writes the start row. It must succeed before any byte is relayed.
func (s *SessionStore) Start(ctx context.Context, r Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions(id, user_name, client_addr, client_version,
		key_fingerprint, user_cert_serial, target, target_kind, login, mode, kind, command,
		session_cert_serial, start_at, recording_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.User, r.ClientAddr, r.ClientVersion, r.KeyFingerprint, int64(r.UserCertSerial), r.Target,
		r.TargetKind, r.Login, r.Mode, r.Kind, r.Command, int64(r.SessionCertSerial), r.Start.UTC().UnixNano(),
		r.RecordingID)
	if err != nil {
		return fmt.Errorf("recorder: session start row: %w", err)
	}
	return nil
}

// Finish writes the end of session r.ID from the end fields of r.
func (s *SessionStore) Finish(ctx context.Context, r Session) error {
	var exit sql.NullInt64
	if r.ExitStatus != nil {
		exit = sql.NullInt64{Int64: int64(*r.ExitStatus), Valid: true}
	}
	end := r.End
	if end.IsZero() {
		end = time.Now()
	}
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET end_at = ?, exit_status = ?, exit_signal = ?,
		end_reason = ?, bytes_in = ?, bytes_out = ?, recording_id = ?, recording_complete = ?, recording_sha256 = ?
		WHERE id = ? AND end_at IS NULL`,
		end.UTC().UnixNano(), exit, r.ExitSignal, r.EndReason, r.BytesIn, r.BytesOut, r.RecordingID,
		r.RecordingComplete, r.RecordingSHA256, r.ID)
	if err != nil {
		return fmt.Errorf("recorder: session end row: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("recorder: session %s: no open session to end", r.ID)
	}
	return nil
}

// ErrNoSession is returned by Get for an unknown id.
var ErrNoSession = errors.New("recorder: no such session")

const sessionColumns = `id, user_name, client_addr, client_version, key_fingerprint, user_cert_serial, target,
	target_kind, login, mode, kind, command, session_cert_serial, start_at, end_at, exit_status, exit_signal,
	end_reason, bytes_in, bytes_out, recording_id, recording_complete, recording_sha256`

// Get returns session id.
func (s *SessionStore) Get(ctx context.Context, id string) (Session, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id)
	r, err := scanSession(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	return r, err
}

type rowScanner interface{ Scan(dest ...any) error }

// scanSession reads the sessionColumns of a row, then any extra columns
// into extra.
func scanSession(row rowScanner, extra ...any) (Session, error) {
	var r Session
	var userSerial, sessSerial, start int64
	var end, exit sql.NullInt64
	dest := append([]any{&r.ID, &r.User, &r.ClientAddr, &r.ClientVersion, &r.KeyFingerprint, &userSerial, &r.Target,
		&r.TargetKind, &r.Login, &r.Mode, &r.Kind, &r.Command, &sessSerial, &start, &end, &exit, &r.ExitSignal,
		&r.EndReason, &r.BytesIn, &r.BytesOut, &r.RecordingID, &r.RecordingComplete, &r.RecordingSHA256}, extra...)
	err := row.Scan(dest...)
	if err != nil {
		return Session{}, err
	}
	r.UserCertSerial, r.SessionCertSerial = uint64(userSerial), uint64(sessSerial)
	r.Start = time.Unix(0, start).UTC()
	if end.Valid {
		r.End = time.Unix(0, end.Int64).UTC()
	}
	if exit.Valid {
		v := int(exit.Int64)
		r.ExitStatus = &v
	}
	return r, nil
}

// EndAbandoned ends every session left open by a gateway that died, with
// reason. It returns the sessions it ended (for abnormal session-end events).
func (s *SessionStore) EndAbandoned(ctx context.Context, reason string) ([]Session, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE end_at IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	var open []Session
	for rows.Next() {
		r, err := scanSession(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("recorder: %w", err)
		}
		open = append(open, r)
	}
	rows.Close()
	for i := range open {
		open[i].EndReason = reason
		open[i].End = time.Now()
		if err := s.Finish(ctx, open[i]); err != nil {
			return nil, err
		}
	}
	return open, rows.Err()
}

// SessionFilter selects sessions for the sessions page. Zero fields do not
// filter.
type SessionFilter struct {
	User, Target, Login string
	Live, Ended         bool      // only live / only ended sessions
	Since, Until        time.Time // by start time
	Command             string    // a command containing this text
	Before              time.Time // keyset paging: sessions that started before this
	Limit               int       // zero means 50
}

// SessionRow is a session with its command count.
type SessionRow struct {
	Session
	Commands int
}

// List returns sessions matching f, newest first. Paging is by start time
// (keyset), so it stays fast however many sessions there are.
func (s *SessionStore) List(ctx context.Context, f SessionFilter) ([]SessionRow, error) {
	var conds []string
	var args []any
	add := func(c string, v ...any) { conds = append(conds, c); args = append(args, v...) }
	if f.User != "" {
		add("user_name = ?", f.User)
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if f.Login != "" {
		add("login = ?", f.Login)
	}
	if f.Live {
		add("end_at IS NULL")
	}
	if f.Ended {
		add("end_at IS NOT NULL")
	}
	if !f.Since.IsZero() {
		add("start_at >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("start_at < ?", f.Until.UnixNano())
	}
	if !f.Before.IsZero() {
		add("start_at < ?", f.Before.UnixNano())
	}
	if f.Command != "" {
		add(`EXISTS (SELECT 1 FROM recording_commands rc WHERE rc.recording_id = sessions.recording_id
			AND rc.text LIKE ? ESCAPE '\')`, "%"+escapeLike(f.Command)+"%")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	q := `SELECT ` + sessionColumns + `, (SELECT COUNT(*) FROM recording_commands rc WHERE rc.recording_id = sessions.recording_id)
		FROM sessions`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY start_at DESC LIMIT ?"
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("recorder: sessions: %w", err)
	}
	defer rows.Close()
	var out []SessionRow
	for rows.Next() {
		var r SessionRow
		var err error
		if r.Session, err = scanSession(rows, &r.Commands); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
