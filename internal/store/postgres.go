package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgConnector opens pgx connections through pgx's database/sql driver and
// wraps each one so that the `?` placeholders every package writes reach the
// server as $1, $2, ... (see Rebind), and Go booleans are sent as 0/1 to the
// integer columns that hold flags on both engines.
type pgConnector struct {
	inner driver.Connector
}

func newPGConnector(cfg *pgx.ConnConfig) driver.Connector {
	return pgConnector{inner: stdlib.GetConnector(*cfg)}
}

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{Conn: conn.(*stdlib.Conn)}, nil
}

func (c pgConnector) Driver() driver.Driver { return c.inner.Driver() }

// pgConn is a pgx connection that takes SQLite-style queries.
type pgConn struct {
	*stdlib.Conn
}

var (
	_ driver.ConnPrepareContext = (*pgConn)(nil)
	_ driver.ExecerContext      = (*pgConn)(nil)
	_ driver.QueryerContext     = (*pgConn)(nil)
	_ driver.ConnBeginTx        = (*pgConn)(nil)
	_ driver.NamedValueChecker  = (*pgConn)(nil)
	_ driver.Pinger             = (*pgConn)(nil)
	_ driver.SessionResetter    = (*pgConn)(nil)
)

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	q, _ := Rebind(query)
	return c.Conn.PrepareContext(ctx, q)
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	q, _ := Rebind(query)
	return c.Conn.ExecContext(ctx, q, args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, _ := Rebind(query)
	return c.Conn.QueryContext(ctx, q, args)
}

// CheckNamedValue sends a bool as 0 or 1: flags are INTEGER columns in the
// SQLite schema and BIGINT in PostgreSQL's, so the same Go code writes both.
// Everything else goes to pgx as it is (it handles Valuers itself).
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if b, ok := nv.Value.(bool); ok {
		if b {
			nv.Value = int64(1)
		} else {
			nv.Value = int64(0)
		}
	}
	return nil
}

// openPostgres opens a pool of pgx connections to url.
func openPostgres(url string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: database.url: %w", err)
	}
	db := sql.OpenDB(newPGConnector(cfg))
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	return db, nil
}

// IsPostgresDB reports whether db was opened on the PostgreSQL engine, for
// the few statements whose SQL must differ (command search).
func IsPostgresDB(db *sql.DB) bool {
	_, ok := db.Driver().(*stdlib.Driver)
	return ok
}

// Advisory lock keys (pg_advisory_xact_lock) of the appenders that must be
// one at a time across every instance sharing a PostgreSQL database.
const (
	// AuditAppendLock serialises audit appends and checkpoints: each reads
	// the chain head and writes the next ids in its transaction.
	AuditAppendLock = 0x67617564 // "gaud"
	// ApprovalLock serialises starting plain-ssh approvals, so the caps
	// per source and in total hold across instances.
	ApprovalLock = 0x67617070 // "gapp"
)

// LockTx makes tx the only holder of lock until it commits or rolls back.
// On PostgreSQL that is a transaction-scoped advisory lock, so appenders on
// other instances wait for it; on SQLite it does nothing (transactions begin
// IMMEDIATE there, which already serialises writers of the one file).
func LockTx(ctx context.Context, db *sql.DB, tx *sql.Tx, lock int64) error {
	if !IsPostgresDB(db) {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, lock); err != nil {
		return fmt.Errorf("store: lock: %w", err)
	}
	return nil
}
