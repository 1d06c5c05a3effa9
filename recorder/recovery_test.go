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

// backdate moves an instance's last renewal and lease end back by d, as if
// it had died d ago.
func backdate(t *testing.T, db *store.DB, id string, d time.Duration) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), `UPDATE instances SET renewed = renewed - ?, lease_until = lease_until - ?
		WHERE id = ?`, d.Nanoseconds(), d.Nanoseconds(), id); err != nil {
		t.Fatal(err)
	}
}

// dbNowOf is the database's clock as g's instance reads it.
func dbNowOf(t *testing.T, g *gwInstance) int64 {
	t.Helper()
	n, err := g.in.DBNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func instanceRows(t *testing.T, db *store.DB) map[string]bool {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT id FROM instances`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	return out
}

// TestPruneInstancesOnlyAfterRecovery: the row of an instance dead for
// longer than instance.Retention stays while it still owns an open session,
// an open recording or a seal-pending one (recovery needs it to decide
// ownership), and goes once a live instance's recovery pass claimed and
// sealed all of them. Live instances, the pruning instance itself and an
// instance dead for less than the retention keep their rows.
func TestPruneInstancesOnlyAfterRecovery(t *testing.T) {
	ctx := context.Background()
	for name, db := range recoveryEngines(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dead := startInstance(t, db, dir, time.Second, nil)
			dead.startSession(t, "s-1", "one\r\n")
			dead.startSession(t, "s-2", "two\r\n")
			dead.recs.Close()
			pending := startInstance(t, db, dir, time.Second, nil) // died with a seal pending
			rp := pending.startSession(t, "s-p", "pending\r\n")
			pending.recs.Close()
			recent := startInstance(t, db, dir, time.Second, nil) // died, but not long ago
			live := startInstance(t, db, dir, time.Hour, nil)
			b := startInstance(t, db, dir, time.Hour, nil) // the survivor that recovers and prunes
			for _, g := range []*gwInstance{dead, pending} {
				backdate(t, db, g.in.ID(), instance.Retention+time.Hour)
			}
			backdate(t, db, recent.in.ID(), instance.Retention-time.Hour)

			// Before recovery: dead and pending still own open rows.
			if gone, err := b.in.PruneDead(ctx); err != nil || len(gone) != 0 {
				t.Fatalf("pruned before recovery: %v %v", gone, err)
			}
			// Recovery claims and ends dead's sessions and seals its
			// recordings; pending's session is ended by hand and its
			// recording left seal-pending, still owned by pending (as when
			// its store is down and nobody claimed it yet).
			open, err := b.ss.OpenOfDead(ctx, dbNowOf(t, b))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range open {
				if o.Instance != dead.in.ID() {
					continue
				}
				if won, err := b.ss.Claim(ctx, o.ID, o.Instance); err != nil || !won {
					t.Fatalf("claim %s: %v %v", o.ID, won, err)
				}
				o.EndReason = "gateway stopped unexpectedly"
				if err := b.ss.EndClaimed(ctx, o.Session, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.ExecContext(ctx, `UPDATE sessions SET end_at = ? WHERE id = 's-p'`, time.Now().UnixNano()); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE recordings SET ended = ?, seal_pending = 1 WHERE id = ?`,
				time.Now().UnixNano(), rp.ID()); err != nil {
				t.Fatal(err)
			}
			// dead's recordings are sealed by the pass; pending's is
			// parked on the live instance for now so the pass leaves it.
			if _, err := db.ExecContext(ctx, `UPDATE recordings SET instance_id = ? WHERE id = ?`, live.in.ID(), rp.ID()); err != nil {
				t.Fatal(err)
			}
			if got, err := b.recs.RecoverDead(ctx, dbNowOf(t, b)); err != nil || len(got) != 2 {
				t.Fatalf("recovered %+v %v", got, err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE recordings SET instance_id = ? WHERE id = ?`, pending.in.ID(), rp.ID()); err != nil {
				t.Fatal(err)
			}
			gone, err := b.in.PruneDead(ctx)
			if err != nil || len(gone) != 1 || gone[0] != dead.in.ID() {
				t.Fatalf("pruned %v %v, want only %s", gone, err, dead.in.ID())
			}
			rows := instanceRows(t, db)
			for _, g := range []*gwInstance{pending, recent, live, b} {
				if !rows[g.in.ID()] {
					t.Errorf("row of %s pruned", g.in.ID())
				}
			}
			// Once the seal-pending recording is claimed and sealed,
			// pending's row goes too.
			if got, err := b.recs.RecoverDead(ctx, dbNowOf(t, b)); err != nil || len(got) != 1 || got[0].ID != rp.ID() {
				t.Fatalf("recovered %+v %v", got, err)
			}
			if gone, err := b.in.PruneDead(ctx); err != nil || len(gone) != 1 || gone[0] != pending.in.ID() {
				t.Fatalf("pruned %v %v, want %s", gone, err, pending.in.ID())
			}
		})
	}
}
