package audit

import (
	"context"
	"errors"
	"fmt"
)

// QueueDepth is the number of appends waiting for the writer (metrics).
func (l *Log) QueueDepth() int { return len(l.reqs) }

// Check reports why the audit writer cannot take appends now: it is closed,
// its queue is full, or the database cannot be read. It writes nothing.
func (l *Log) Check(ctx context.Context) error {
	select {
	case <-l.quit:
		return ErrClosed
	default:
	}
	if len(l.reqs) == cap(l.reqs) {
		return errors.New("audit: writer queue is full")
	}
	var n int64
	if err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT id FROM audit_events ORDER BY id DESC LIMIT 1) AS newest`).Scan(&n); err != nil {
		return fmt.Errorf("audit: log unreadable: %w", err)
	}
	return nil
}
