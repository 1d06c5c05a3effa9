// Package storetest opens empty databases on both engines for tests that
// must hold on each: a SQLite file and a fresh database on the test binary's
// shared PostgreSQL cluster (internal/testenv). It lives apart from store so
// store's own tests, which testenv's harness serves, import no cycle.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// Engines opens one empty, migrated database per engine, keyed by
// store.SQLite and store.Postgres, closed at the test's end. The caller's
// TestMain stops the shared cluster (testenv.StopSharedPostgres).
func Engines(t testing.TB) map[string]*store.DB {
	t.Helper()
	lite, err := store.Open(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	pg, err := store.OpenURL(context.Background(), testenv.SharedPostgres(t).NewDatabase(t), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return map[string]*store.DB{store.SQLite: lite, store.Postgres: pg}
}
