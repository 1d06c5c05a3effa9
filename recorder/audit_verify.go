package recorder

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// VerifyReport is the outcome of VerifyChain.
type VerifyReport struct {
	OK          bool
	Events      int64 // events read
	FirstBad    int64 // id of the first bad event, 0 if none or not attributable
	Problem     string
	Checkpoints int // signed checkpoints checked
	Latest      *Checkpoint
}

func (r VerifyReport) String() string {
	if r.OK {
		s := fmt.Sprintf("OK: %d events, hash chain intact, %d signed checkpoints match", r.Events, r.Checkpoints)
		if r.Latest != nil {
			s += fmt.Sprintf(" (latest: %d events at %s)", r.Latest.Size, r.Latest.Time.Format("2006-01-02T15:04:05Z"))
		}
		return s
	}
	if r.FirstBad > 0 {
		return fmt.Sprintf("FAILED at event %d: %s", r.FirstBad, r.Problem)
	}
	return "FAILED: " + r.Problem
}

// memTree holds recomputed tlog stored hashes.
type memTree []tlog.Hash

func (m *memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= int64(len(*m)) {
			return nil, fmt.Errorf("tree index %d out of range", idx)
		}
		out[i] = (*m)[idx]
	}
	return out, nil
}

// VerifyChain recomputes the whole chain and Merkle tree from the stored
// events and checks every stored checkpoint, plus extra (earlier checkpoints
// kept elsewhere: one note, or a whole CheckpointFile), against them with
// verifierKey. It reports
// the first bad event: edited, deleted, inserted or reordered rows, and a
// truncated tail.
func VerifyChain(ctx context.Context, db *sql.DB, verifierKey string, extra []byte) (VerifyReport, error) {
	rep := VerifyReport{}
	var last int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM audit_events`).Scan(&last); err != nil {
		return rep, fmt.Errorf("recorder: verify: %w", err)
	}
	tree := make(memTree, 0, 2*min(max(last, 0), 1<<26)+64) // a tree of n leaves stores < 2n hashes
	prev := make([]byte, 32)
	var n int64
	bad := func(id int64, format string, args ...any) error {
		rep.FirstBad, rep.Problem = id, fmt.Sprintf(format, args...)
		return errStop
	}
	err := pipelined(ctx, db, Filter{byID: true}, func(ev StoredEvent) error {
		want := n + 1
		switch {
		case ev.ID > want:
			return bad(want, "event %d is missing (deleted)", want)
		case ev.ID != want:
			return bad(want, "unexpected event id %d (inserted)", ev.ID)
		}
		got := ChainHash(ev.PrevHash, canonicalWith(&ev.Event, ev.DetailsJSON))
		if !bytes.Equal(got, ev.Hash) {
			return bad(ev.ID, "content does not match its hash (edited, inserted or moved)")
		}
		if !bytes.Equal(ev.PrevHash, prev) {
			if n == 0 {
				return bad(ev.ID, "the first event does not start the chain (earlier events deleted)")
			}
			return bad(n, "its hash no longer matches what event %d recorded (event %d was rewritten, or events were deleted or reordered)", ev.ID, n)
		}
		hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(ev.Hash), &tree)
		if err != nil {
			return err
		}
		tree = append(tree, hs...)
		prev = ev.Hash
		n++
		return nil
	})
	rep.Events = n
	if err == errStop {
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	notes, err := storedCheckpoints(ctx, db)
	if err != nil {
		return rep, err
	}
	notes = append(notes, SplitCheckpoints(extra)...)
	for _, msg := range notes {
		cp, err := ParseCheckpoint(msg, verifierKey)
		if err != nil {
			rep.Problem = "a checkpoint does not verify: " + err.Error()
			return rep, nil
		}
		if cp.Size > n {
			rep.FirstBad = n + 1
			rep.Problem = fmt.Sprintf("log truncated: the checkpoint signed at %s covers %d events, only %d remain",
				cp.Time.Format("2006-01-02T15:04:05Z"), cp.Size, n)
			return rep, nil
		}
		if cp.Size > 0 {
			root, err := tlog.TreeHash(cp.Size, &tree)
			if err != nil {
				return rep, err
			}
			if root != cp.Root {
				rep.Problem = fmt.Sprintf("events 1..%d no longer match the checkpoint signed at %s (history rewritten)",
					cp.Size, cp.Time.Format("2006-01-02T15:04:05Z"))
				return rep, nil
			}
		}
		rep.Checkpoints++
		if rep.Latest == nil || cp.Size >= rep.Latest.Size {
			c := cp
			rep.Latest = &c
		}
	}
	rep.OK = true
	return rep, nil
}

var errStop = fmt.Errorf("stop")

func storedCheckpoints(ctx context.Context, db *sql.DB) ([][]byte, error) {
	rows, err := db.QueryContext(ctx, `SELECT note FROM audit_checkpoints ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("recorder: checkpoints: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, []byte(s))
	}
	return out, rows.Err()
}
