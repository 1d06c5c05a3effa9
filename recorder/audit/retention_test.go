package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// days appends one event an hour for n days on the fake clock, with a
// checkpoint every 6 hours.
func days(t *testing.T, e *auditEnv, n int) {
	t.Helper()
	for h := 1; h <= n*24; h++ {
		e.now = e.now.Add(time.Hour)
		if err := e.log.Append(context.Background(), Event{Type: EventLogin, User: fmt.Sprintf("u%d", h)}); err != nil {
			t.Fatal(err)
		}
		if h%6 == 0 {
			if _, err := e.log.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestAuditRetentionPrunesWholeRangesAndStillVerifies(t *testing.T) {
	e := newAuditEnvOpts(t, Options{CheckpointInterval: 6 * time.Hour})
	days(t, e, 3) // events 1..72, checkpoints at 6, 12, ..., 72
	cutoff := e.now.Add(-31 * time.Hour)
	res, err := e.log.PruneAudit(context.Background(), cutoff, "retention")
	if err != nil {
		t.Fatal(err)
	}
	// Events 1..40 are older than the cutoff (event 41 is at it); the
	// largest checkpoint below that is 36: only whole ranges go.
	if res.First != 1 || res.Last != 36 || res.Count != 36 {
		t.Fatalf("pruned %+v, want events 1..36", res)
	}
	// The prune event was written first and names the range and hashes.
	evs, _ := e.log.Query(context.Background(), Filter{Type: EventPrune})
	if len(evs) != 1 || evs[0].ID != 73 {
		t.Fatalf("prune events %+v", evs)
	}
	d := evs[0].Details
	if d["what"] != "audit" || d["first_id"] != int64(1) || d["last_id"] != int64(36) || len(d["boundary_hash"].(string)) != 64 || d["boundary_root"] == "" {
		t.Fatalf("prune event details %v", d)
	}
	var n int64
	e.db.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE id <= 36`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d pruned events still stored", n)
	}
	rep := e.verifyFull(t)
	if !rep.OK || !strings.HasPrefix(rep.String(), "OK: 37 events (ids 37..73), hash chain and Merkle tree intact; events 1..36 pruned by retention under a signed prune event, boundary checkpoint verified; signed head covers all 73 events") {
		t.Fatalf("after prune: %s", rep)
	}
	// The log goes on, and a second prune moves the boundary.
	days(t, e, 1)
	if res, err = e.log.PruneAudit(context.Background(), e.now.Add(-30*time.Hour), "retention"); err != nil || res.First != 37 || res.Last != 60 {
		t.Fatalf("second prune %+v, %v", res, err)
	}
	if rep := e.verifyFull(t); !rep.OK || rep.Pruned != 60 {
		t.Fatalf("after the second prune: %s", rep)
	}
	// Nothing old enough: nothing goes.
	if res, err = e.log.PruneAudit(context.Background(), e.now.Add(-30*time.Hour), "retention"); err != nil || res.Count != 0 {
		t.Fatalf("third prune %+v, %v", res, err)
	}
}

// Deleting old events by hand, even exactly at a checkpoint boundary with
// the tree hashes kept, is not a prune: there is no signed prune event.
func TestAuditAttackDeleteOldEventsWithoutPruneEvent(t *testing.T) {
	e := newAuditEnv(t)
	days(t, e, 1)
	keep, err := frontier(12)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, i := range keep {
		args = append(args, fmt.Sprint(i))
	}
	mustExec(t, e, `DELETE FROM audit_events WHERE id <= 12; DELETE FROM audit_tree WHERE idx < ? AND idx NOT IN (`+strings.Join(args, ",")+`)`,
		storedIndex(12))
	rep := e.verifyFull(t)
	if want := "FAILED at event 13: events 1..12 are gone and no signed prune event accounts for them (deleted)"; rep.OK || rep.String() != want {
		t.Fatalf("report = %s\nwant      %s", rep, want)
	}
}

func TestAuditRetentionRefusesATamperedLog(t *testing.T) {
	e := newAuditEnv(t)
	days(t, e, 2)
	mustExec(t, e, `UPDATE audit_events SET user_name = 'mallory' WHERE id = 3`)
	_, err := e.log.PruneAudit(context.Background(), e.now.Add(-time.Hour), "retention")
	if err == nil || !strings.Contains(err.Error(), "the audit log does not verify, nothing pruned: FAILED at event 3") {
		t.Fatalf("prune of a tampered log: %v", err)
	}
	var n int64
	e.db.QueryRow(`SELECT COUNT(*) FROM audit_events`).Scan(&n)
	if n != 48 {
		t.Fatalf("%d events left, want all 48", n)
	}
}

func storedIndex(n int64) int64 { return tlog.StoredHashIndex(0, n) }
