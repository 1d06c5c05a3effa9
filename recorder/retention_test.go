package recorder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// auditEnv is an audit log on a fake clock in a fresh database, for the
// retention tests that prune recordings under signed prune events.
type auditEnv struct {
	db  *store.DB
	sec *secrets.Store
	log *audit.Log
	now time.Time
}

func newAuditEnv(t testing.TB) *auditEnv {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	e := &auditEnv{db: db, sec: secrets.NewStore(db.DB, kr), now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	e.log, err = audit.Open(db, e.sec, audit.Options{CheckpointInterval: -1, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close(); db.Close() })
	return e
}

func (e *auditEnv) verify(t *testing.T) audit.VerifyReport {
	t.Helper()
	rep, err := audit.Verify(context.Background(), e.db.DB, audit.VerifyOptions{Keys: e.log.Keys(), Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// days appends one event an hour for n days on the fake clock, with a
// checkpoint every 6 hours.
func days(t *testing.T, e *auditEnv, n int) {
	t.Helper()
	for h := 1; h <= n*24; h++ {
		e.now = e.now.Add(time.Hour)
		if err := e.log.Append(context.Background(), audit.Event{Type: audit.EventLogin, User: fmt.Sprintf("u%d", h)}); err != nil {
			t.Fatal(err)
		}
		if h%6 == 0 {
			if _, err := e.log.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
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
	evs, _ := e.log.Query(context.Background(), audit.Filter{Type: audit.EventPrune})
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
	if rep := e.verify(t); !rep.OK {
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
		evs, err := e.log.Query(context.Background(), audit.Filter{Type: audit.EventPrune})
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
	if rep := e.verify(t); !rep.OK || rep.Pruned != 18 {
		t.Fatalf("after the scheduled prune: %s", rep)
	}
}
