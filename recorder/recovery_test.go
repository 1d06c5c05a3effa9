package recorder

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/instance"
	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
)

// recoveryEngines opens one empty database per engine.
func recoveryEngines(t *testing.T) map[string]*store.DB { return storetest.Engines(t) }

// gwInstance is one gateway's recorder side: its registration, recordings
// (in a directory every instance shares) and session store.
type gwInstance struct {
	in   *instance.Instance
	recs *Recordings
	ss   *SessionStore
}

func startInstance(t *testing.T, db *store.DB, dir string, lease time.Duration, s3o *S3Options) *gwInstance {
	t.Helper()
	in, err := instance.Register(context.Background(), db, instance.Options{Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	r, err := OpenRecordings(dir, db, kr, RecordingOptions{FlushInterval: 10 * time.Millisecond, Instance: in.ID(), S3: s3o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	ss := NewSessionStore(db.DB)
	ss.SetInstance(in.ID())
	return &gwInstance{in: in, recs: r, ss: ss}
}

// startSession writes a session row and its recording with some output
// flushed to storage.
func (g *gwInstance) startSession(t *testing.T, id, text string) *Recording {
	t.Helper()
	rec, err := g.recs.Start(SessionInfo{SessionID: id, User: "alice", Target: "db-1", Login: "root"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ss.Start(context.Background(), Session{ID: id, User: "alice", Target: "db-1", Login: "root",
		Start: time.Now(), RecordingID: rec.ID()}); err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte(text))
	rec.flushIfDirty()
	return rec
}

func (g *gwInstance) recoverNow(t *testing.T) []Recovered {
	t.Helper()
	now, err := g.in.DBNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.recs.RecoverDead(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestRecoveryLeavesLiveInstancesAlone: instance B's recovery pass never
// touches what live instance A is recording; once A's lease has run out
// (A died: no renewals), B seals A's recording as incomplete and it plays,
// while B's own live recording stays open. A clean Release hands over at
// once.
func TestRecoveryLeavesLiveInstancesAlone(t *testing.T) {
	for name, db := range recoveryEngines(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a := startInstance(t, db, dir, 2*time.Second, nil)
			b := startInstance(t, db, dir, time.Hour, nil)
			ra := a.startSession(t, "s-a", "from A\r\n")
			rb := b.startSession(t, "s-b", "from B\r\n")
			if got := b.recoverNow(t); len(got) != 0 {
				t.Fatalf("B sealed a live instance's recordings: %+v", got)
			}
			if m, _ := b.recs.Meta(context.Background(), ra.ID()); !m.Ended.IsZero() {
				t.Fatalf("A's live recording ended by B: %+v", m)
			}
			a.recs.Close() // A dies: no seal, no renewal
			var got []Recovered
			waitUntil(t, "A's lease to run out", func() bool { got = b.recoverNow(t); return len(got) > 0 })
			if len(got) != 1 || got[0].ID != ra.ID() || got[0].SessionID != "s-a" {
				t.Fatalf("recovered %+v", got)
			}
			m, err := b.recs.Meta(context.Background(), ra.ID())
			if err != nil || m.Complete || m.Ended.IsZero() || !strings.Contains(m.Reason, "stopped unexpectedly") {
				t.Fatalf("A's recording after recovery %+v %v", m, err)
			}
			if _, evs := castLines(t, b.recs, ra.ID(), false); outputOf(evs, "o") != "from A\r\n" {
				t.Fatalf("A's recording plays %q", outputOf(evs, "o"))
			}
			if m, _ := b.recs.Meta(context.Background(), rb.ID()); !m.Ended.IsZero() {
				t.Fatalf("B sealed its own live recording: %+v", m)
			}
			// A clean stop: C's open recording is sealed by the next pass,
			// without waiting for C's (hour-long) lease.
			c := startInstance(t, db, dir, time.Hour, nil)
			rc := c.startSession(t, "s-c", "from C\r\n")
			c.recs.Close()
			if err := c.in.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := b.recoverNow(t); len(got) != 1 || got[0].ID != rc.ID() {
				t.Fatalf("after C released its lease: %+v", got)
			}
		})
	}
}

// TestRecoveryClaimsOnce: three live instances run recovery passes at the
// same time over a dead instance's ten recordings and sessions; each is
// sealed by exactly one of them (one final record: the recording reads to
// its end) and each session is claimed exactly once.
func TestRecoveryClaimsOnce(t *testing.T) {
	for name, db := range recoveryEngines(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dead := startInstance(t, db, dir, time.Second, nil)
			var ids []string
			for i := 0; i < 10; i++ {
				ids = append(ids, dead.startSession(t, fmt.Sprintf("s-%d", i), fmt.Sprintf("line %d\r\n", i)).ID())
			}
			dead.recs.Close()
			survivors := []*gwInstance{startInstance(t, db, dir, time.Hour, nil), startInstance(t, db, dir, time.Hour, nil),
				startInstance(t, db, dir, time.Hour, nil)}
			waitUntil(t, "the dead instance's lease to run out", func() bool {
				now, _ := survivors[0].in.DBNow(context.Background())
				open, err := survivors[0].ss.OpenOfDead(context.Background(), now)
				if err != nil {
					t.Log(err)
				}
				return err == nil && len(open) == 10
			})
			var mu sync.Mutex
			sealed, claimed := map[string]int{}, map[string]int{}
			var wg sync.WaitGroup
			for _, s := range survivors {
				wg.Add(1)
				go func() {
					defer wg.Done()
					now, _ := s.in.DBNow(context.Background())
					open, err := s.ss.OpenOfDead(context.Background(), now)
					if err != nil {
						t.Error(err)
						return
					}
					for _, o := range open {
						won, err := s.ss.Claim(context.Background(), o.ID, o.Instance)
						if err != nil {
							t.Error(err)
						}
						if won {
							mu.Lock()
							claimed[o.ID]++
							mu.Unlock()
						}
					}
					got, err := s.recs.RecoverDead(context.Background(), now)
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					for _, r := range got {
						sealed[r.ID]++
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			if len(sealed) != 10 || len(claimed) != 10 {
				t.Fatalf("sealed %v claimed %v", sealed, claimed)
			}
			for id, n := range sealed {
				if n != 1 {
					t.Errorf("recording %s sealed %d times", id, n)
				}
			}
			for id, n := range claimed {
				if n != 1 {
					t.Errorf("session %s claimed %d times", id, n)
				}
			}
			for i, id := range ids {
				if _, evs := castLines(t, survivors[0].recs, id, false); outputOf(evs, "o") != fmt.Sprintf("line %d\r\n", i) {
					t.Fatalf("recording %d plays %q", i, outputOf(evs, "o"))
				}
			}
		})
	}
}

// TestRecoverySealsOnlyOnceAfterACrashMidSeal: a recording whose final
// record is already written (the sealing instance died before its row was
// updated) is not sealed a second time.
func TestRecoverySealsOnlyOnceAfterACrashMidSeal(t *testing.T) {
	r, db, _ := newRecordings(t, RecordingOptions{})
	rec, err := r.Start(SessionInfo{SessionID: "s", User: "u", Target: "t", Login: "l"})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("kept\r\n"))
	rec.flushIfDirty()
	m, err := r.row(context.Background(), rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := r.sealTorn(m, crashReason) // the final record, then the "crash"
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	r2, err := OpenRecordings(r.dir, db, kr, RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	got, err := r2.Recover(context.Background())
	if err != nil || len(got) != 1 || got[0].SHA256 != first {
		t.Fatalf("recovered %+v (first seal %s) err %v", got, first, err)
	}
	if _, evs := castLines(t, r2, rec.ID(), false); outputOf(evs, "o") != "kept\r\n" {
		t.Fatalf("plays %q", outputOf(evs, "o"))
	}
}

// waitUntil polls cond with a generous deadline (not a timing assertion).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
