// Package recordertest writes the recorder's tables in bulk for benchmarks
// and tests: ended sessions, each with a recording row (no recording file)
// and reconstructed commands, fast enough for hundreds of thousands of
// rows. It lives beside package recorder, which owns these tables, so their
// SQL stays in one place; the binary never imports it.
package recordertest

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// InsertSessions writes n ended sessions a minute apart from start, each
// with a recording and 3 recorded screen commands
// ("systemctl status service-<i%977>-<c>"), in one transaction. Session i
// is "s%06d" by user "user%03d" (i%300) on "db-%02d" (i%50).
func InsertSessions(ctx context.Context, db *sql.DB, start time.Time, n int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	sess, err := tx.PrepareContext(ctx, `INSERT INTO sessions(id, user_name, client_addr, client_version, key_fingerprint, user_cert_serial,
		target, target_kind, login, mode, kind, start_at, end_at, recording_id) VALUES (?, ?, '10.0.0.1:1', 'SSH-2.0-x', 'fp', 1, ?,
		'ssh', 'root', 'direct', 'shell', ?, ?, ?)`)
	if err != nil {
		return err
	}
	recs, err := tx.PrepareContext(ctx, `INSERT INTO recordings(id, session_id, user_name, target, login, file, wrapped_key, started, cols,
		rows, interactive) VALUES (?, ?, 'u', 't', 'root', 'f', x'00', ?, 80, 24, 1)`)
	if err != nil {
		return err
	}
	cmds, err := tx.PrepareContext(ctx, `INSERT INTO recording_commands(recording_id, seq, offset_us, time, source, text) VALUES (?, ?, 0, ?, 'screen', ?)`)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("s%06d", i)
		rec := fmt.Sprintf("r%06d", i)
		t := start.Add(time.Duration(i) * time.Minute).UnixNano()
		if _, err := sess.ExecContext(ctx, id, fmt.Sprintf("user%03d", i%300), fmt.Sprintf("db-%02d", i%50), t, t+int64(time.Minute), rec); err != nil {
			return err
		}
		if _, err := recs.ExecContext(ctx, rec, id, t); err != nil {
			return err
		}
		for c := 0; c < 3; c++ {
			if _, err := cmds.ExecContext(ctx, rec, c+1, t, fmt.Sprintf("systemctl status service-%d-%d", i%977, c)); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// CountSessions returns the number of session rows.
func CountSessions(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&n)
	return n, err
}
