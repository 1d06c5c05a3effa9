package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// The same end-to-end suite runs on both database engines: with
// GATEHOUSE_TEST_DB=postgres every world gets a fresh database on one shared
// PostgreSQL cluster (TLS verify-full against the test CA) instead of the
// SQLite file in its data_dir. .ci/test.sh runs the suite both ways.

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedPostgres()
	os.Exit(code)
}

// onPostgres reports whether this run uses PostgreSQL.
func onPostgres() bool { return os.Getenv("GATEHOUSE_TEST_DB") == "postgres" }

// databaseConfig is the database section for a new world: empty on SQLite,
// a fresh PostgreSQL database otherwise. Every world's bootstrap and gateway
// share it.
func databaseConfig(t *testing.T) string {
	t.Helper()
	if !onPostgres() {
		return ""
	}
	pg := worldPostgres
	if pg == nil {
		pg = testenv.SharedPostgres(t)
	}
	return fmt.Sprintf("database:\n  url: %q\n", pg.NewDatabase(t))
}

// worldPostgres, when set, is the cluster new worlds use instead of the
// shared one (a test that restarts PostgreSQL has its own).
var worldPostgres *testenv.Postgres

// sqliteOnly skips a test of the embedded engine's own files (backup of the
// SQLite file, its WAL) in the PostgreSQL run, saying so.
func sqliteOnly(t *testing.T) {
	t.Helper()
	if onPostgres() {
		t.Skip("tests the embedded SQLite file; this run uses PostgreSQL (GATEHOUSE_TEST_DB=postgres)")
	}
}
