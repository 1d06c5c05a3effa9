package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// Retention never deletes silently and never deletes one item: it removes
// only whole ranges older than the configured age, and only after a signed
// audit.prune event naming what goes (ids, times, hashes) is committed.
// Nothing else in Gatehouse deletes audit events or recordings. The audit
// half (PruneAudit) lives in package audit; this file prunes recordings and
// runs both on a schedule.

// Retention says how long audit events and recordings are kept. Zero keeps
// them forever.
type Retention struct {
	Audit      time.Duration
	Recordings time.Duration
}

// pruneBatch bounds how many recordings one prune event lists.
const pruneBatch = 200

type prunedRec struct {
	id, file, sha, session, user, target string
	started, ended                       int64
}

// Prune removes whole recordings that ended before cutoff: for each batch it
// first appends a signed prune event listing every recording (id, SHA-256 of
// the file, session, user, target, start and end), then removes the files
// and rows. Open recordings are never touched.
func (r *Recordings) Prune(ctx context.Context, log *audit.Log, cutoff time.Time, actor string) (audit.PruneResult, error) {
	res := audit.PruneResult{What: "recordings"}
	if r.s3 != nil {
		// Gatehouse holds no delete permission on the bucket (and object
		// lock forbids it): the bucket's lifecycle rules expire objects.
		r.log.Warn("recording retention: recordings are in object storage; Gatehouse does not delete them (no delete permission, object lock): nothing pruned, use a bucket lifecycle rule",
			"bucket", r.s3.o.Bucket, "older_than", cutoff)
		return res, nil
	}
	for {
		batch, err := r.expired(ctx, cutoff)
		if err != nil || len(batch) == 0 {
			return res, err
		}
		if err := log.Append(ctx, audit.Event{Type: audit.EventPrune, User: actor, Details: recPruneDetails(batch, cutoff),
			Reason: fmt.Sprintf("retention: %d recordings ended before %s removed", len(batch), stamp(cutoff))}); err != nil {
			return res, err
		}
		done := context.WithoutCancel(ctx) // the prune event is written: finish the batch it lists
		for _, rec := range batch {
			if err := r.remove(done, rec); err != nil {
				return res, err
			}
			res.IDs = append(res.IDs, rec.id)
			res.Count++
		}
		r.log.Info("recording retention: recordings pruned", "count", len(batch), "older_than", cutoff)
	}
}

func (r *Recordings) expired(ctx context.Context, cutoff time.Time) ([]prunedRec, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id, file, sha256, session_id, user_name, target, started, ended
		FROM recordings WHERE ended IS NOT NULL AND ended < ? ORDER BY started LIMIT ?`, cutoff.UnixNano(), pruneBatch)
	if err != nil {
		return nil, fmt.Errorf("recorder: retention: %w", err)
	}
	defer rows.Close()
	var out []prunedRec
	for rows.Next() {
		var p prunedRec
		if err := rows.Scan(&p.id, &p.file, &p.sha, &p.session, &p.user, &p.target, &p.started, &p.ended); err != nil {
			return nil, fmt.Errorf("recorder: retention: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func recPruneDetails(batch []prunedRec, cutoff time.Time) map[string]any {
	var b strings.Builder
	for _, p := range batch {
		fmt.Fprintf(&b, "%s sha256=%s session=%s user=%s target=%s started=%s ended=%s\n", p.id, p.sha, p.session,
			p.user, p.target, stamp(time.Unix(0, p.started)), stamp(time.Unix(0, p.ended)))
	}
	return map[string]any{"what": "recordings", "count": len(batch), "older_than": stamp(cutoff), "recordings": b.String()}
}

// remove deletes one recording's files (the recording and any companion
// files named after its id) and then its rows.
func (r *Recordings) remove(ctx context.Context, p prunedRec) error {
	files, err := filepath.Glob(filepath.Join(r.dir, p.id+".*"))
	if err != nil {
		return fmt.Errorf("recorder: retention: %w", err)
	}
	if p.file != "" && filepath.Base(p.file) == p.file {
		files = append(files, filepath.Join(r.dir, p.file))
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("recorder: retention: recording %s: %w", p.id, err)
		}
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("recorder: retention: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM recording_commands WHERE recording_id = ?`, p.id); err != nil {
		return fmt.Errorf("recorder: retention: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM recordings WHERE id = ?`, p.id); err != nil {
		return fmt.Errorf("recorder: retention: %w", err)
	}
	return tx.Commit()
}

// ApplyRetention prunes what ret says is too old at now; zero ages keep
// everything. It reports what was removed.
func ApplyRetention(ctx context.Context, ret Retention, log *audit.Log, recs *Recordings, now time.Time, actor string) ([]audit.PruneResult, error) {
	var out []audit.PruneResult
	if ret.Recordings > 0 && recs != nil {
		res, err := recs.Prune(ctx, log, now.Add(-ret.Recordings), actor)
		out = append(out, res)
		if err != nil {
			return out, err
		}
	}
	if ret.Audit > 0 {
		res, err := log.PruneAudit(ctx, now.Add(-ret.Audit), actor)
		out = append(out, res)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// RetentionRun applies a retention policy on a schedule.
type RetentionRun struct {
	Retention
	Audit      *audit.Log
	Recordings *Recordings // nil: recordings are not pruned
	// Every is the time between runs; zero means 24h.
	Every time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Loop applies the policy once at start and then every r.Every until ctx
// ends. Failures are logged and retried at the next run; a log that does not
// verify is never pruned.
func (r RetentionRun) Loop(ctx context.Context) {
	if r.Every <= 0 {
		r.Every = 24 * time.Hour
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	t := time.NewTicker(r.Every)
	defer t.Stop()
	for {
		r.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r RetentionRun) once(ctx context.Context) {
	res, err := ApplyRetention(ctx, r.Retention, r.Audit, r.Recordings, r.Now(), "gatehouse retention")
	for _, p := range res {
		if p.Count > 0 {
			r.Logger.Info("retention applied", "result", p.String())
		}
	}
	if err != nil && ctx.Err() == nil {
		r.Logger.Error("retention failed; nothing more pruned until the next run", "err", err)
	}
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
