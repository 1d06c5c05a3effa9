package audit

import (
	"context"
	"time"
)

// checkpointDue reports whether the scheduled checkpoint should be written
// now: not when any instance sharing the database signed one less than half
// an interval ago, so several instances sign about once per interval rather
// than once each. On an error it answers yes (a checkpoint too many is
// harmless; one too few is what verify flags).
func (l *Log) checkpointDue(ctx context.Context) bool {
	var last int64
	if err := l.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(time), 0) FROM audit_checkpoints`).Scan(&last); err != nil {
		return true
	}
	return l.opts.Now().Sub(time.Unix(last, 0)) >= l.opts.CheckpointInterval/2
}
