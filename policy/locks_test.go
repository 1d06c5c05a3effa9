package policy

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

func TestLocks(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	l := NewLocks(db.DB)
	l.Now = func() time.Time { return now }
	ctx := context.Background()
	if _, locked := l.Locked(ctx, "alice"); locked {
		t.Fatal("locked before any lock")
	}
	if err := l.Lock(ctx, "alice", "", "admin", 0); err == nil {
		t.Fatal("a lock without a reason was accepted")
	}
	l.Lock(ctx, "alice", "laptop stolen", "admin", time.Hour)
	if lk, locked := l.Locked(ctx, "alice"); !locked || lk.Reason != "laptop stolen" || lk.By != "admin" {
		t.Fatalf("lock %+v %v", lk, locked)
	}
	now = now.Add(time.Hour)
	if _, locked := l.Locked(ctx, "alice"); locked {
		t.Fatal("lock outlived its duration")
	}
	l.Lock(ctx, "bob", "left the company", "admin", 0)
	now = now.Add(1000 * time.Hour)
	if list, _ := l.List(ctx); len(list) != 1 || list[0].User != "bob" {
		t.Fatalf("locks in force: %+v", list)
	}
	l.Unlock(ctx, "bob")
	if _, locked := l.Locked(ctx, "bob"); locked {
		t.Fatal("still locked after unlock")
	}
	// Fail closed: when the lock table cannot be read, the user is locked.
	db.Close()
	if _, locked := l.Locked(ctx, "carol"); !locked {
		t.Fatal("an unreadable lock table let the user in")
	}
}
