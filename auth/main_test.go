package auth

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedPostgres()
	os.Exit(code)
}

// approvalEngines opens a fresh database on each engine (SQLite and a
// database on the test binary's PostgreSQL cluster).
func approvalEngines(t *testing.T) map[string]*sql.DB {
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
	return map[string]*sql.DB{store.SQLite: lite.DB, store.Postgres: pg.DB}
}

// eachEngine runs f once per engine with a fresh database.
func eachEngine(t *testing.T, f func(t *testing.T, db *sql.DB)) {
	for name, db := range approvalEngines(t) {
		t.Run(name, func(t *testing.T) { f(t, db) })
	}
}
