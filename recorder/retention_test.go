package recorder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	e := newAuditEnvOpts(t, AuditOptions{CheckpointInterval: 6 * time.Hour})
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

func TestRecordingRetentionPrunesWholeRecordingsListedFirst(t *testing.T) {
	e := newAuditEnv(t)
	clock := e.now
	recs, err := OpenRecordings(filepath.Join(t.TempDir(), "recordings"), e.db, e.sec.Keyring(), RecordingOptions{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer recs.Close()
	record := func(session string) *Recording {
		rec, err := recs.Start(SessionInfo{SessionID: session, User: "alice", Target: "db-1", Login: "root", Start: clock})
		if err != nil {
			t.Fatal(err)
		}
		rec.Output([]byte("hello from " + session + "\r\n"))
		return rec
	}
	old1, old2 := record("s-old-1"), record("s-old-2")
	for _, r := range []*Recording{old1, old2} {
		if _, err := r.Close("exited 0"); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(300 * 24 * time.Hour)
	open := record("s-still-open") // started long ago, never ended
	clock = clock.Add(200 * 24 * time.Hour)
	young := record("s-young")
	young.Close("exited 0")
	e.now = clock
	files := func(id string) []string { m, _ := filepath.Glob(filepath.Join(recs.dir, id+".*")); return m }
	if len(files(old1.ID())) != 1 {
		t.Fatalf("recording file of %s missing before prune", old1.ID())
	}
	res, err := recs.Prune(context.Background(), e.log, clock.Add(-400*24*time.Hour), "retention")
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 2 {
		t.Fatalf("pruned %+v, want the two old recordings", res)
	}
	for _, id := range []string{old1.ID(), old2.ID()} {
		if len(files(id)) != 0 {
			t.Fatalf("recording %s still has files %v", id, files(id))
		}
		if _, err := recs.OpenCast(context.Background(), id, false); err == nil {
			t.Fatalf("recording %s still opens", id)
		}
	}
	for _, id := range []string{open.ID(), young.ID()} {
		if len(files(id)) != 1 {
			t.Fatalf("recording %s was touched: %v", id, files(id))
		}
	}
	evs, _ := e.log.Query(context.Background(), Filter{Type: EventPrune})
	if len(evs) != 1 || evs[0].Details["what"] != "recordings" || evs[0].Details["count"] != int64(2) {
		t.Fatalf("prune events %+v", evs)
	}
	list := evs[0].Details["recordings"].(string)
	for _, id := range []string{old1.ID(), old2.ID()} {
		if !strings.Contains(list, id+" sha256=") || strings.Contains(list, id+" sha256= ") {
			t.Fatalf("prune event does not list %s with its hash:\n%s", id, list)
		}
	}
	open.Close("done")
	if rep := e.verify(t, nil); !rep.OK {
		t.Fatalf("audit after recording prune: %s", rep)
	}
}

// A recording file that cannot be removed keeps its row (and the error is
// returned), so nothing half-disappears.
func TestRecordingRetentionKeepsRowWhenFileStays(t *testing.T) {
	e := newAuditEnv(t)
	clock := e.now
	recs, err := OpenRecordings(filepath.Join(t.TempDir(), "recordings"), e.db, e.sec.Keyring(), RecordingOptions{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer recs.Close()
	rec, _ := recs.Start(SessionInfo{SessionID: "s1", User: "alice", Target: "db-1", Login: "root"})
	rec.Close("exited 0")
	blocker := filepath.Join(recs.dir, rec.ID()+".raw")
	os.MkdirAll(filepath.Join(blocker, "x"), 0o700) // a non-empty directory cannot be removed
	_, err = recs.Prune(context.Background(), e.log, clock.Add(time.Hour), "retention")
	if err == nil || !strings.Contains(err.Error(), "recorder: retention: recording "+rec.ID()) {
		t.Fatalf("prune with an unremovable file: %v", err)
	}
	var n int
	e.db.QueryRow(`SELECT COUNT(*) FROM recordings WHERE id = ?`, rec.ID()).Scan(&n)
	if n != 1 {
		t.Fatal("the recording row went although a file stayed")
	}
}

func storedIndex(n int64) int64 { return tlog.StoredHashIndex(0, n) }

// The gateway's schedule prunes at start with its clock, and stops with
// its context.
func TestRetentionRunPrunesAtStart(t *testing.T) {
	e := newAuditEnv(t)
	days(t, e, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		RetentionRun{Retention: Retention{Audit: 48 * time.Hour}, Audit: e.log, Every: time.Hour,
			Now: func() time.Time { return e.now }}.Loop(ctx)
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := e.log.Query(context.Background(), Filter{Type: EventPrune})
		if err != nil {
			t.Fatal(err)
		}
		var left int
		if err := e.db.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE id <= 18`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if len(evs) == 1 && left == 0 {
			if evs[0].Details["last_id"] != int64(18) || evs[0].User != "gatehouse retention" {
				t.Fatalf("prune event %+v", evs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no prune event within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if rep := e.verify(t, nil); !rep.OK || rep.Pruned != 18 {
		t.Fatalf("after the scheduled prune: %s", rep)
	}
}
