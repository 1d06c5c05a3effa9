package recorder

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// RecordingListing is one recording as `gatehouse recording list` shows it.
type RecordingListing struct {
	ID, SessionID, User, Login, Target string
	Started                            time.Time
	Ended                              time.Time // zero while live
	Complete                           bool
	Bytes                              int64
	Command                            string // the exec request, "" for a shell
	Interactive                        bool
	Kind                               string // the session's kind; "" when its row is missing
	Commands                           int64  // commands reconstructed from it (not the exec request)
}

// RecentRecordings returns the newest n recordings, newest first, with
// their session's kind and the number of commands reconstructed from them.
// It reads the database only (no recording file, no object store).
func (s *SessionStore) RecentRecordings(ctx context.Context, n int) ([]RecordingListing, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT r.id, r.session_id, r.user_name, r.login, r.target, r.started, r.ended,
		r.complete, r.bytes, r.command, r.interactive, COALESCE(s.kind, ''),
		(SELECT COUNT(*) FROM recording_commands rc WHERE rc.recording_id = r.id AND rc.source <> 'exec')
		FROM recordings r LEFT JOIN sessions s ON s.id = r.session_id ORDER BY r.started DESC LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("recorder: recordings: %w", err)
	}
	defer rows.Close()
	var out []RecordingListing
	for rows.Next() {
		var l RecordingListing
		var started int64
		var ended sql.NullInt64
		if err := rows.Scan(&l.ID, &l.SessionID, &l.User, &l.Login, &l.Target, &started, &ended, &l.Complete, &l.Bytes,
			&l.Command, &l.Interactive, &l.Kind, &l.Commands); err != nil {
			return nil, fmt.Errorf("recorder: recordings: %w", err)
		}
		l.Started = time.Unix(0, started).UTC()
		if ended.Valid {
			l.Ended = time.Unix(0, ended.Int64).UTC()
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// RecordingCommands returns the commands recorded for a recording (exec
// requests, reconstructed screen lines, stdin script lines), in order.
func (s *SessionStore) RecordingCommands(ctx context.Context, recordingID string) ([]Command, error) {
	return recordingCommands(ctx, s.db, recordingID)
}

func recordingCommands(ctx context.Context, db *sql.DB, id string) ([]Command, error) {
	rows, err := db.QueryContext(ctx, `SELECT offset_us, time, source, text FROM recording_commands
		WHERE recording_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	defer rows.Close()
	var out []Command
	for rows.Next() {
		var off, t int64
		var c Command
		if err := rows.Scan(&off, &t, &c.Source, &c.Text); err != nil {
			return nil, err
		}
		c.Offset, c.Time = time.Duration(off)*time.Microsecond, time.Unix(0, t).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
