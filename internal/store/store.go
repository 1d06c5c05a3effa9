// Package store opens Gatehouse's database and applies the numbered
// migrations embedded for its engine: SQLite (modernc.org/sqlite, no cgo, in
// WAL mode; migrations/) by default, or PostgreSQL (pgx, a connection pool
// with TLS verify-full by default; migrations_postgres/, the same numbers in
// PostgreSQL types) when database.url is postgres://.
//
// Every query in Gatehouse goes through prepared statements with `?`
// placeholders; the PostgreSQL engine rewrites them to $n (Rebind). Schema
// changes happen only through a new numbered migration file for each engine,
// never by editing an applied one.
package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql migrations_postgres/*.sql
var migrationFS embed.FS

// Engines.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// DB is the Gatehouse database.
type DB struct {
	*sql.DB
	path   string
	engine string
}

// Engine returns SQLite or Postgres.
func (db *DB) Engine() string {
	if db.engine == "" {
		return SQLite
	}
	return db.engine
}

// IsPostgres reports whether db is a PostgreSQL database.
func (db *DB) IsPostgres() bool { return db.engine == Postgres }

// busyTimeoutMS is how long SQLite waits for a lock another process holds
// (the CLI, a backup); writers of this process queue in Go (sqlitelock.go).
// A variable so a test can shorten it.
var busyTimeoutMS = 10000

// sqliteIdleConns is how many SQLite connections stay open when idle.
const sqliteIdleConns = 16

// Open opens (creating if needed) the database file at path and migrates it
// to the newest schema.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	// Writers queue for the file in Go rather than in SQLite's busy
	// handler (sqlitelock.go).
	sdb := sql.OpenDB(newSQLiteConnector(dsn, path))
	// Keep connections open between bursts: database/sql keeps only 2 idle
	// by default, so under concurrent sessions it closed and reopened
	// SQLite connections all the time, each open re-running the pragmas
	// and re-reading the schema (10% of the gateway's CPU per new session,
	// docs/performance.md).
	sdb.SetMaxIdleConns(sqliteIdleConns)
	db := &DB{DB: sdb, path: path, engine: SQLite}
	if err := db.migrate(context.Background()); err != nil {
		sdb.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return db, nil
}

// Path returns the database file path.
func (db *DB) Path() string { return db.path }

type migration struct {
	version int
	name    string
	sql     string
}

func migrations(engine string) ([]migration, error) {
	dir := "migrations"
	if engine == Postgres {
		dir = "migrations_postgres"
	}
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("store: migration %s: name must start with a number and '_'", e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("store: migrations %s and %s share number %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := migrationFS.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, e.Name(), string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrationLock is the pg_advisory_lock key held while an instance migrates,
// so two instances starting together never apply a migration twice.
const migrationLock = 0x6761746568 // "gateh"

func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations(db.Engine())
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer conn.Close()
	if db.IsPostgres() {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(?)`, migrationLock); err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
		defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(?)`, migrationLock)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, m := range ms {
		if err := apply(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

func apply(ctx context.Context, conn *sql.Conn, m migration) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("store: migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`, m.version, m.name, time.Now().Unix()); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return tx.Commit()
}
