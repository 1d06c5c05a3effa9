package recorder

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// Count is one labelled number in an overview (a user, a target, a reason);
// the same type as audit.Count, so one chart draws both.
type Count = audit.Count

// DayCount is one day's number for one series (a session kind).
type DayCount struct {
	Day    time.Time // midnight UTC
	Series string
	N      int64
}

// SessionStats is what the overview page shows about sessions since a time.
type SessionStats struct {
	PerDay     []DayCount // sessions started per day, by kind
	TopUsers   []Count
	TopTargets []Count
	Live       int64 // sessions running now
}

const dayNanos = int64(24 * time.Hour)

// Stats summarises sessions started since since (UTC days), with the top
// users and targets (up to top each) and the sessions live now.
func (s *SessionStore) Stats(ctx context.Context, since time.Time, top int) (SessionStats, error) {
	var st SessionStats
	from := since.UnixNano()
	rows, err := s.db.QueryContext(ctx, `SELECT start_at / ?, CASE WHEN kind LIKE 'subsystem:%' THEN 'file transfer'
		WHEN kind = 'exec' AND EXISTS (SELECT 1 FROM recording_commands rc
		WHERE rc.recording_id = sessions.recording_id AND rc.source = 'stdin') THEN 'shell' WHEN kind = 'exec' THEN 'exec' WHEN kind = 'shell' THEN 'shell' ELSE kind END, COUNT(*)
		FROM sessions WHERE start_at >= ? GROUP BY 1, 2 ORDER BY 1, 2`, dayNanos, from)
	if err != nil {
		return st, fmt.Errorf("recorder: session stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d DayCount
		var day int64
		if err := rows.Scan(&day, &d.Series, &d.N); err != nil {
			return st, fmt.Errorf("recorder: session stats: %w", err)
		}
		d.Day = time.Unix(0, day*dayNanos).UTC()
		st.PerDay = append(st.PerDay, d)
	}
	if err := rows.Err(); err != nil {
		return st, err
	}
	if st.TopUsers, err = topCounts(ctx, s.db, `SELECT user_name, COUNT(*) FROM sessions WHERE start_at >= ?
		GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?`, from, top); err != nil {
		return st, err
	}
	if st.TopTargets, err = topCounts(ctx, s.db, `SELECT login || '@' || target, COUNT(*) FROM sessions WHERE start_at >= ?
		GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?`, from, top); err != nil {
		return st, err
	}
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE end_at IS NULL`).Scan(&st.Live)
	return st, err
}

// topCounts runs a "label, count" query.
func topCounts(ctx context.Context, db *sql.DB, q string, args ...any) ([]Count, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("recorder: stats: %w", err)
	}
	defer rows.Close()
	var out []Count
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.Label, &c.N); err != nil {
			return nil, fmt.Errorf("recorder: stats: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// BytesPerDay sums the size of recordings started each UTC day since since.
func (r *Recordings) BytesPerDay(ctx context.Context, since time.Time) ([]DayCount, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT started / ?, CAST(SUM(bytes) AS BIGINT) FROM recordings WHERE started >= ?
		GROUP BY 1 ORDER BY 1`, dayNanos, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("recorder: recording stats: %w", err)
	}
	defer rows.Close()
	var out []DayCount
	for rows.Next() {
		var day int64
		d := DayCount{Series: "bytes"}
		if err := rows.Scan(&day, &d.N); err != nil {
			return nil, fmt.Errorf("recorder: recording stats: %w", err)
		}
		d.Day = time.Unix(0, day*dayNanos).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}
