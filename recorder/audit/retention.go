package audit

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Retention never deletes silently and never deletes one event: PruneAudit
// removes only a whole range of old events, and only after a signed
// audit.prune event naming what goes (ids, times, hashes) is committed.

// PruneResult describes what one prune removed.
type PruneResult struct {
	What        string   // "audit" or "recordings"
	First, Last int64    // audit: the event ids removed (0, 0 when none)
	Count       int      // events or recordings removed
	IDs         []string // recordings removed
}

func (p PruneResult) String() string {
	switch {
	case p.Count == 0:
		return fmt.Sprintf("%s: nothing older than the retention period", p.What)
	case p.What == "audit":
		return fmt.Sprintf("audit: pruned events %d..%d (%d events)", p.First, p.Last, p.Count)
	}
	return fmt.Sprintf("recordings: pruned %d recordings", p.Count)
}

// PruneAudit removes events 1..K, where K is the largest signed checkpoint
// such that every event up to K is older than cutoff. The log must verify
// first; the checkpoint at K, the checkpoints before it and the Merkle tree
// hashes needed to extend the tree from K are kept, so `verify` still passes.
func (l *Log) PruneAudit(ctx context.Context, cutoff time.Time, actor string) (PruneResult, error) {
	res := PruneResult{What: "audit"}
	rep, err := l.Verify(ctx)
	if err != nil {
		return res, err
	}
	if !rep.OK {
		return res, fmt.Errorf("audit: retention: the audit log does not verify, nothing pruned: %s", rep)
	}
	base := rep.Pruned
	k, err := l.pruneBoundary(ctx, base, cutoff)
	if err != nil || k == 0 {
		return res, err
	}
	details, err := l.pruneDetails(ctx, base, k, cutoff)
	if err != nil {
		return res, err
	}
	if err := l.Append(ctx, Event{Type: EventPrune, User: actor, Details: details,
		Reason: fmt.Sprintf("retention: audit events %d..%d older than %s removed", base+1, k, stamp(cutoff))}); err != nil {
		return res, err
	}
	// The prune event is written: finish what it says even if ctx ends now.
	if err := l.deleteThrough(context.WithoutCancel(ctx), k); err != nil {
		return res, err
	}
	l.log.Info("audit retention: events pruned", "first", base+1, "last", k, "older_than", cutoff)
	return PruneResult{What: "audit", First: base + 1, Last: k, Count: int(k - base)}, nil
}

// pruneBoundary returns the largest checkpoint size K > base such that
// every event up to K is older than cutoff, or 0.
func (l *Log) pruneBoundary(ctx context.Context, base int64, cutoff time.Time) (int64, error) {
	var k sql.NullInt64
	err := l.db.QueryRowContext(ctx, `SELECT MAX(tree_size) FROM audit_checkpoints WHERE tree_size > ? AND tree_size <
		COALESCE((SELECT MIN(id) FROM audit_events WHERE time >= ?), (SELECT MAX(id) + 1 FROM audit_events))`,
		base, cutoff.UnixNano()).Scan(&k)
	if err != nil {
		return 0, fmt.Errorf("audit: retention: %w", err)
	}
	return k.Int64, nil
}

// pruneDetails describes the range base+1..k for the prune event.
func (l *Log) pruneDetails(ctx context.Context, base, k int64, cutoff time.Time) (map[string]any, error) {
	var firstT, lastT int64
	var hash []byte
	var cpNote string
	err := l.db.QueryRowContext(ctx, `SELECT (SELECT time FROM audit_events WHERE id = ?), time, hash,
		(SELECT note FROM audit_checkpoints WHERE tree_size = ? ORDER BY id DESC LIMIT 1) FROM audit_events WHERE id = ?`,
		base+1, k, k).Scan(&firstT, &lastT, &hash, &cpNote)
	if err != nil {
		return nil, fmt.Errorf("audit: retention: %w", err)
	}
	cp, err := parseCheckpoint([]byte(cpNote), l.Keys())
	if err != nil {
		return nil, err
	}
	return map[string]any{"what": "audit", "first_id": base + 1, "last_id": k, "pruned_through": k,
		"events": k - base, "first_time": stamp(time.Unix(0, firstT)), "last_time": stamp(time.Unix(0, lastT)),
		"boundary_hash": hex.EncodeToString(hash), "boundary_root": cp.Root.String(),
		"boundary_checkpoint": stamp(cp.Time), "older_than": stamp(cutoff)}, nil
}

// deleteThrough removes events 1..k and the tree hashes of those leaves,
// except the complete subtrees of the first k leaves that later roots need.
func (l *Log) deleteThrough(ctx context.Context, k int64) error {
	l.keys.mu.Lock()
	defer l.keys.mu.Unlock()
	idx, err := frontier(k)
	if err != nil {
		return err
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: retention: %w", err)
	}
	defer tx.Rollback()
	keep, err := (&treeReader{ctx: ctx, tx: tx}).ReadHashes(idx)
	if err != nil {
		return fmt.Errorf("audit: retention: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_tree WHERE idx < ?`, tlog.StoredHashIndex(0, k)); err != nil {
		return fmt.Errorf("audit: retention: %w", err)
	}
	for i, ix := range idx {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_tree(idx, hash) VALUES (?, ?)`, ix, keep[i][:]); err != nil {
			return fmt.Errorf("audit: retention: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE id <= ?`, k); err != nil {
		return fmt.Errorf("audit: retention: %w", err)
	}
	return tx.Commit()
}
