package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// Two gateways on one PostgreSQL database append to one audit chain at the
// same time: every append succeeds, the chain has no fork (ids 1..n without
// gaps, each event's prev_hash is the one before) and verifies with its
// signed head and the checkpoints both instances wrote.
func TestAuditTwoInstancesOneChain(t *testing.T) {
	url := testenv.SharedPostgres(t).NewDatabase(t)
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	var logs [2]*Log
	var dbs [2]*store.DB
	for i := range logs {
		db, err := store.OpenURL(context.Background(), url, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		dbs[i] = db
		if logs[i], err = Open(db, secrets.NewStore(db.DB, kr), Options{CheckpointInterval: -1}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
	}
	var before int64
	dbs[0].QueryRow(`SELECT COUNT(*) FROM audit_events`).Scan(&before)
	const perWriter, writers = 40, 3
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*perWriter)
	for i, l := range logs {
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < perWriter; n++ {
					errs <- l.Append(context.Background(), Event{Type: EventCommand, User: "alice", Target: "db-1",
						SessionID: fmt.Sprintf("i%d-w%d", i, w), Details: map[string]any{"command": fmt.Sprintf("ls %d", n)}})
					if n == perWriter/2 && w == 0 {
						if _, err := l.Checkpoint(context.Background()); err != nil {
							errs <- err
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range logs {
		l.Close()
	}
	var n, maxID int64
	dbs[0].QueryRow(`SELECT COUNT(*), MAX(id) FROM audit_events`).Scan(&n, &maxID)
	if want := before + 2*writers*perWriter; n != want || maxID != n {
		t.Fatalf("%d events with max id %d, want %d", n, maxID, want)
	}
	rep, err := Verify(context.Background(), dbs[1].DB, VerifyOptions{Keys: logs[1].Keys(), Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("verify: %s", rep)
	}
}
