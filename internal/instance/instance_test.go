package instance

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedPostgres()
	os.Exit(code)
}

func engines(t *testing.T) map[string]*store.DB { return storetest.Engines(t) }

func liveIDs(t *testing.T, db *store.DB) map[string]bool {
	t.Helper()
	live, err := Live(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, i := range live {
		out[i.ID] = true
	}
	return out
}

// TestLease: a registered instance is live while it renews; a lease that
// ran out is reported as lost on the next renewal (the instance must end
// the sessions others may have sealed) and taken again; Release ends it at
// once. On PostgreSQL the lease is on the server's clock.
func TestLease(t *testing.T) {
	ctx := context.Background()
	for name, db := range engines(t) {
		t.Run(name, func(t *testing.T) {
			a, err := Register(ctx, db, Options{Lease: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			b, err := Register(ctx, db, Options{Lease: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if a.ID() == b.ID() {
				t.Fatal("two instances share an id")
			}
			if live := liveIDs(t, db); !live[a.ID()] || !live[b.ID()] {
				t.Fatalf("live %v", live)
			}
			if err := a.Renew(ctx); err != nil {
				t.Fatalf("renew within the lease: %v", err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for liveIDs(t, db)[a.ID()] { // no renewals: the lease runs out
				if time.Now().After(deadline) {
					t.Fatal("a's lease never ran out")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("renew after the lease ran out: %v", err)
			}
			if !liveIDs(t, db)[a.ID()] {
				t.Fatal("a not live again after taking a new lease")
			}
			if err := b.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if liveIDs(t, db)[b.ID()] {
				t.Fatal("b live after Release")
			}
			if err := b.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("renew after release: %v", err)
			}
		})
	}
}

// TestRenewAfterRowPruned: an instance that went unrenewed for longer than
// Retention (stalled, or cut off from the database) may find its row
// pruned by another instance; its next Renew reports the lease lost (it
// must end what others sealed) and writes the row again, so it is live and
// its new sessions are not taken for a dead instance's.
func TestRenewAfterRowPruned(t *testing.T) {
	ctx := context.Background()
	for name, db := range engines(t) {
		t.Run(name, func(t *testing.T) {
			a, err := Register(ctx, db, Options{Lease: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			b, err := Register(ctx, db, Options{Lease: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			back := (Retention + time.Hour).Nanoseconds()
			if _, err := db.ExecContext(ctx, `UPDATE instances SET renewed = renewed - ?, lease_until = lease_until - ? WHERE id = ?`,
				back, back, a.ID()); err != nil {
				t.Fatal(err)
			}
			if gone, err := b.PruneDead(ctx); err != nil || len(gone) != 1 || gone[0] != a.ID() {
				t.Fatalf("pruned %v %v, want %s", gone, err, a.ID())
			}
			if gone, err := a.PruneDead(ctx); err != nil || len(gone) != 0 {
				t.Fatalf("a pruned the live b (or itself): %v %v", gone, err)
			}
			if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("renew after the row was pruned: %v", err)
			}
			if live := liveIDs(t, db); !live[a.ID()] || !live[b.ID()] {
				t.Fatalf("live %v after a renewed", live)
			}
			if err := a.Renew(ctx); err != nil {
				t.Fatalf("renew once the row is back: %v", err)
			}
		})
	}
}
