package auth

import (
	"database/sql"
	"os"
	"testing"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
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
	dbs := storetest.Engines(t)
	return map[string]*sql.DB{store.SQLite: dbs[store.SQLite].DB, store.Postgres: dbs[store.Postgres].DB}
}

// eachEngine runs f once per engine with a fresh database.
func eachEngine(t *testing.T, f func(t *testing.T, db *sql.DB)) {
	for name, db := range approvalEngines(t) {
		t.Run(name, func(t *testing.T) { f(t, db) })
	}
}
