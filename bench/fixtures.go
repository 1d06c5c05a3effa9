// Package bench holds Gatehouse's benchmarks (go test -bench) and the data
// they share with the side-by-side driver in bench/sshbench.
package bench

import (
	"database/sql"
	"fmt"
	"time"
)

// FixtureStart is the start time of the first fixture session.
var FixtureStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// InsertSessions writes n ended sessions a minute apart from FixtureStart,
// each with a recording and 3 recorded commands
// ("systemctl status service-<i%977>-<c>"), in one transaction.
func InsertSessions(db *sql.DB, n int) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	sess, err := tx.Prepare(`INSERT INTO sessions(id, user_name, client_addr, client_version, key_fingerprint, user_cert_serial,
		target, target_kind, login, mode, kind, start_at, end_at, recording_id) VALUES (?, ?, '10.0.0.1:1', 'SSH-2.0-x', 'fp', 1, ?,
		'ssh', 'root', 'direct', 'shell', ?, ?, ?)`)
	if err != nil {
		return err
	}
	recs, err := tx.Prepare(`INSERT INTO recordings(id, session_id, user_name, target, login, file, wrapped_key, started, cols,
		rows, interactive) VALUES (?, ?, 'u', 't', 'root', 'f', x'00', ?, 80, 24, 1)`)
	if err != nil {
		return err
	}
	cmds, err := tx.Prepare(`INSERT INTO recording_commands(recording_id, seq, offset_us, time, source, text) VALUES (?, ?, 0, ?, 'screen', ?)`)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("s%06d", i)
		rec := fmt.Sprintf("r%06d", i)
		t := FixtureStart.Add(time.Duration(i) * time.Minute).UnixNano()
		if _, err := sess.Exec(id, fmt.Sprintf("user%03d", i%300), fmt.Sprintf("db-%02d", i%50), t, t+int64(time.Minute), rec); err != nil {
			return err
		}
		if _, err := recs.Exec(rec, id, t); err != nil {
			return err
		}
		for c := 0; c < 3; c++ {
			if _, err := cmds.Exec(rec, c+1, t, fmt.Sprintf("systemctl status service-%d-%d", i%977, c)); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}
