package audit

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Count is one labelled number in an overview (a user, a target, a reason).
type Count struct {
	Label string
	N     int64
}

// refusalTypes are the audit events that record something refused.
var refusalTypes = []any{EventSessionDenied, EventAuthFailure, EventForwardDenied, EventMFAFailure, EventMFALockout}

// Refusals counts refusals since since by reason (the top reasons, up to
// top), from the audit log.
func (l *Log) Refusals(ctx context.Context, since time.Time, top int) ([]Count, error) {
	args := append([]any{since.UnixNano()}, refusalTypes...)
	args = append(args, top)
	return topCounts(ctx, l.db.DB, `SELECT reason, COUNT(*) FROM audit_events WHERE time >= ?
		AND type IN (?, ?, ?, ?, ?) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?`, args...)
}

// topCounts runs a "label, count" query.
func topCounts(ctx context.Context, db *sql.DB, q string, args ...any) ([]Count, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: stats: %w", err)
	}
	defer rows.Close()
	var out []Count
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.Label, &c.N); err != nil {
			return nil, fmt.Errorf("audit: stats: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
