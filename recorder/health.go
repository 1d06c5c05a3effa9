package recorder

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// QueueDepth is the number of appends waiting for the writer (metrics).
func (l *AuditLog) QueueDepth() int { return len(l.reqs) }

// Check reports why the audit writer cannot take appends now: it is closed,
// its queue is full, or the database cannot be read. It writes nothing.
func (l *AuditLog) Check(ctx context.Context) error {
	select {
	case <-l.quit:
		return ErrAuditClosed
	default:
	}
	if len(l.reqs) == cap(l.reqs) {
		return errors.New("recorder: audit writer queue is full")
	}
	var n int64
	if err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT id FROM audit_events ORDER BY id DESC LIMIT 1) AS newest`).Scan(&n); err != nil {
		return fmt.Errorf("recorder: audit log unreadable: %w", err)
	}
	return nil
}

// Check reports whether a new recording could be written now: the
// directory accepts a file (the probe file is removed), or the object
// store's bucket answers.
func (r *Recordings) Check(ctx context.Context) error {
	if r.s3 != nil {
		return r.s3.check(ctx)
	}
	f, err := os.CreateTemp(r.dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("recorder: recordings store not writable: %w", err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("probe"))
	cerr := f.Close()
	os.Remove(name)
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("recorder: recordings store not writable: %w", err)
	}
	return nil
}
