package audit

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// RotateKey makes a new audit signing key active and retires the old one,
// keeping its public half so that everything it signed still verifies. The
// old key first signs a checkpoint of the whole log; the rotation is then an
// audit event (signed with the new key) followed by a checkpoint with the new
// key. The old private key is dropped.
func (l *Log) RotateKey(ctx context.Context, actor string) (old, cur Key, err error) {
	if _, err := l.checkpoint(ctx); err != nil {
		return old, cur, err
	}
	if old, cur, err = l.swapKey(ctx); err != nil {
		return old, cur, err
	}
	err = l.Append(ctx, Event{Type: EventKeyRotated, User: actor, Reason: "audit signing key rotated",
		Details: map[string]any{"old_key": old.ID, "new_key": cur.ID, "new_verifier": cur.Verifier}})
	if err != nil {
		return old, cur, err
	}
	_, err = l.checkpoint(ctx)
	return old, cur, err
}

// swapKey stores the new key file and switches this writer to it.
func (l *Log) swapKey(ctx context.Context) (old, cur Key, err error) {
	k := l.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.refresh(ctx); err != nil {
		return old, cur, err
	}
	f, _, _, err := readKeyFile(ctx, k.sec)
	if err != nil {
		return old, cur, err
	}
	nf, err := newKeyFile(&f, l.opts.Now())
	if err != nil {
		return old, cur, err
	}
	if err := storeKeyFile(ctx, k.sec, nf); err != nil {
		return old, cur, err
	}
	if err := k.refresh(ctx); err != nil {
		return old, cur, err
	}
	return nf.Keys[1], nf.Keys[0], nil
}

// adoptLegacy takes over a log written by an earlier version (one sealed key,
// no signed head): the log must verify against its own checkpoints, then a
// head is signed over it and the key is stored as the first entry of the key
// file. The legacy secret is marked migrated so it cannot be adopted twice.
func (l *Log) adoptLegacy(ctx context.Context, f auditKeyFile) error {
	rep, err := Verify(ctx, l.db.DB, VerifyOptions{Keys: f.Keys, Interval: -1, allowNoHead: true})
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("%w: the log written by the earlier version does not verify: %s", ErrTampered, rep)
	}
	if err := l.signFirstHead(ctx); err != nil {
		return err
	}
	if err := storeKeyFile(ctx, l.keys.sec, f); err != nil {
		return err
	}
	if err := l.keys.sec.Put(ctx, auditSecret, []byte(legacyMigrated)); err != nil {
		return fmt.Errorf("audit: keys: %w", err)
	}
	l.log.Info("audit log adopted: signed head written, signing key moved to the key list", "key", f.Keys[0].ID)
	return l.keys.refresh(ctx)
}

// signFirstHead signs a head over the stored log unless one exists.
func (l *Log) signFirstHead(ctx context.Context) error {
	k := l.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_head`).Scan(&n); err != nil || n > 0 {
		return err
	}
	var size, count int64
	err = tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT MAX(id) FROM audit_events), 0),
		(SELECT COUNT(DISTINCT note) FROM audit_checkpoints)`).Scan(&size, &count)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	var root tlog.Hash
	if size > 0 {
		if root, err = tlog.TreeHash(size, &treeReader{ctx: ctx, tx: tx}); err != nil {
			return fmt.Errorf("audit: tree: %w", err)
		}
	}
	h, err := k.signHead(ctx, tx, Head{Size: size, Root: root, Time: l.opts.Now(), Checkpoints: count})
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	k.head = h
	return nil
}
