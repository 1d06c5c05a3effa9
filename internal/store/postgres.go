package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
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
	// rebound memoizes Rebind: the same few dozen texts run again and
	// again. Bounded by maxRebound; used by one goroutine at a time, as the
	// connection is.
	rebound map[string]string
}

// maxRebound bounds pgConn.rebound; past it the memo starts over.
const maxRebound = 256

// rebind is Rebind(query), memoized.
func (c *pgConn) rebind(query string) string {
	if q, ok := c.rebound[query]; ok {
		return q
	}
	q, _ := Rebind(query)
	if c.rebound == nil || len(c.rebound) >= maxRebound {
		c.rebound = make(map[string]string)
	}
	c.rebound[query] = q
	return q
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

// PrepareContext returns a handle that runs query through the connection's
// statement cache (pgx's default mode: a text is prepared on the server the
// first time this connection runs it, and executed by name after that). A
// prepared statement of pgx's own would instead be prepared and, when the
// caller closes it, deallocated again: two round trips per statement for
// the audit log's per-transaction statements.
func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return &pgStmt{c: c, query: query}, nil
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, c.rebind(query), args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, c.rebind(query), args)
}

// pgStmt is a statement of a pgConn, run through its statement cache.
type pgStmt struct {
	c     *pgConn
	query string
}

func (s *pgStmt) Close() error  { return nil }
func (s *pgStmt) NumInput() int { return -1 } // the server checks the arguments

func (s *pgStmt) Exec(args []driver.Value) (driver.Result, error) {
	return nil, errors.New("store: Stmt.Exec without a context")
}

func (s *pgStmt) Query(args []driver.Value) (driver.Rows, error) {
	return nil, errors.New("store: Stmt.Query without a context")
}

func (s *pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

func (s *pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
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
