package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
)

// SQLite lets one writer at a time into a database file and makes the others
// wait in its busy handler, which sleeps and retries (1, 2, 5 ... 100 ms) until
// busy_timeout. That is not a queue: under contention a writer that sleeps
// 100 ms keeps missing the moments the lock is free while the others take it,
// and with 50 sessions starting at once on a loaded machine one of them waited
// out the whole busy_timeout and failed with SQLITE_BUSY ("cannot mint a
// session certificate: database is locked", TestFiftyParallelSessions).
//
// So the writers of one process queue in Go instead: every write transaction
// (they all BEGIN IMMEDIATE, _txlock=immediate) and every write statement
// outside a transaction first takes the file's writeLock, a FIFO (goroutines
// blocked on a channel send are woken in order), and holds it until the
// commit, rollback or end of the statement. SQLite's busy handler is then
// only needed against other processes on the same file (the CLI, a backup).
// Readers take no lock: WAL readers run beside the writer as before.

// writeLockWait bounds how long a writer queues for the lock, so a leaked
// transaction fails writers with an error rather than hanging them. The
// queue is FIFO, so it is only reached when the writers ahead hold the lock
// that long in all.
const writeLockWait = 60 * time.Second

// writeLock is a FIFO mutex whose Lock can be cancelled.
type writeLock chan struct{}

func (l writeLock) lock(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(writeLockWait)
	defer t.Stop()
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("store: waited %s for the database's write lock", writeLockWait)
	}
}

func (l writeLock) unlock() { <-l }

var (
	writeLocksMu sync.Mutex
	writeLocks   = map[string]writeLock{}
)

// writeLockFor returns the lock of the database file at path, shared by
// every DB of this process opened on that file.
func writeLockFor(path string) writeLock {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	writeLocksMu.Lock()
	defer writeLocksMu.Unlock()
	l, ok := writeLocks[path]
	if !ok {
		l = make(writeLock, 1)
		writeLocks[path] = l
	}
	return l
}

// firstWord returns the upper-cased first keyword of query.
func firstWord(query string) string {
	q := strings.TrimLeft(query, " \t\r\n(")
	for strings.HasPrefix(q, "--") || strings.HasPrefix(q, "/*") {
		if strings.HasPrefix(q, "--") {
			_, q, _ = strings.Cut(q, "\n")
		} else {
			_, q, _ = strings.Cut(q, "*/")
		}
		q = strings.TrimLeft(q, " \t\r\n(")
	}
	end := strings.IndexFunc(q, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	})
	if end >= 0 {
		q = q[:end]
	}
	return strings.ToUpper(q)
}

// execWrites reports whether an Exec of query outside a transaction writes
// and so must hold the write lock. Only plain reads are let through: SELECT
// and VACUUM INTO (a backup snapshot, which reads the live file).
func execWrites(query string) bool {
	switch firstWord(query) {
	case "SELECT", "VALUES", "EXPLAIN":
		return false
	case "VACUUM":
		return !strings.Contains(strings.ToUpper(query), " INTO ")
	}
	return true
}

// queryWrites reports whether a Query of query outside a transaction writes
// (INSERT/UPDATE/DELETE ... RETURNING) and so holds the write lock until its
// rows are closed.
func queryWrites(query string) bool {
	switch firstWord(query) {
	case "INSERT", "UPDATE", "DELETE", "REPLACE":
		return true
	}
	return strings.Contains(strings.ToUpper(query), "RETURNING")
}

// sqliteConnector opens modernc.org/sqlite connections to one file and wraps
// each so its writers take the file's writeLock.
type sqliteConnector struct {
	dsn  string
	drv  *sqlite.Driver
	lock writeLock
}

func newSQLiteConnector(dsn, path string) driver.Connector {
	return &sqliteConnector{dsn: dsn, drv: &sqlite.Driver{}, lock: writeLockFor(path)}
}

func (c *sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &liteConn{inner: conn, lock: c.lock}, nil
}

func (c *sqliteConnector) Driver() driver.Driver { return c.drv }

// liteConn is a SQLite connection whose writes outside a transaction, and
// whose write transactions, hold the file's writeLock. database/sql uses a
// driver.Conn from one goroutine at a time, so inTx needs no lock.
type liteConn struct {
	inner driver.Conn
	lock  writeLock
	inTx  bool
	stmts stmtCache // statements kept prepared (stmtcache.go)
}

var (
	_ driver.ConnPrepareContext = (*liteConn)(nil)
	_ driver.ExecerContext      = (*liteConn)(nil)
	_ driver.QueryerContext     = (*liteConn)(nil)
	_ driver.ConnBeginTx        = (*liteConn)(nil)
	_ driver.Pinger             = (*liteConn)(nil)
	_ driver.SessionResetter    = (*liteConn)(nil)
	_ driver.Validator          = (*liteConn)(nil)
)

func (c *liteConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext returns a handle on query's statement in the connection's
// cache (prepared now if it is not there yet, so a bad query fails here).
func (c *liteConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if _, _, err := c.stmts.get(ctx, c.inner, query); err != nil {
		return nil, err
	}
	return &liteStmt{c: c, query: query}, nil
}

func (c *liteConn) Close() error {
	c.stmts.close()
	return c.inner.Close()
}

func (c *liteConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx takes the write lock for a read-write transaction (BEGIN
// IMMEDIATE) until it commits or rolls back. A read-only one (plain BEGIN,
// reads only) takes none.
func (c *liteConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly {
		return c.inner.(driver.ConnBeginTx).BeginTx(ctx, opts)
	}
	if err := c.lock.lock(ctx); err != nil {
		return nil, err
	}
	tx, err := c.inner.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		c.lock.unlock()
		return nil, err
	}
	c.inTx = true
	return &liteTx{inner: tx, c: c}, nil
}

// writing takes the write lock for one write statement outside a
// transaction; done releases it, and is nil when none was taken.
func (c *liteConn) writing(ctx context.Context, writes bool) (done func(), err error) {
	if c.inTx || !writes {
		return nil, nil
	}
	if err := c.lock.lock(ctx); err != nil {
		return nil, err
	}
	return c.lock.unlock, nil
}

func (c *liteConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, busy, err := c.stmts.get(ctx, c.inner, query)
	if err != nil {
		return nil, err
	}
	done, err := c.writing(ctx, cs.execWrites)
	if err != nil {
		return nil, err
	}
	if done != nil {
		defer done()
	}
	if busy {
		return c.inner.(driver.ExecerContext).ExecContext(ctx, query, args)
	}
	return cs.inner.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *liteConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, busy, err := c.stmts.get(ctx, c.inner, query)
	if err != nil {
		return nil, err
	}
	done, err := c.writing(ctx, cs.queryWrites)
	if err != nil {
		return nil, err
	}
	var rows driver.Rows
	if busy {
		rows, err = c.inner.(driver.QueryerContext).QueryContext(ctx, query, args)
	} else {
		rows, err = cs.inner.(driver.StmtQueryContext).QueryContext(ctx, args)
	}
	if err != nil {
		if done != nil {
			done()
		}
		return nil, err
	}
	if !busy {
		cs.rowsOpen = true
		rows = &cachedRows{Rows: rows, sc: &c.stmts, cs: cs}
	}
	return holdRows(rows, done), nil
}

func (c *liteConn) Ping(ctx context.Context) error { return c.inner.(driver.Pinger).Ping(ctx) }

func (c *liteConn) ResetSession(ctx context.Context) error {
	return c.inner.(driver.SessionResetter).ResetSession(ctx)
}

func (c *liteConn) IsValid() bool { return c.inner.(driver.Validator).IsValid() }

// liteTx releases the write lock when the transaction ends, whether or not
// the COMMIT or ROLLBACK succeeded (the driver leaves the connection out of
// any transaction either way).
type liteTx struct {
	inner driver.Tx
	c     *liteConn
}

func (t *liteTx) Commit() error {
	defer t.end()
	return t.inner.Commit()
}

func (t *liteTx) Rollback() error {
	defer t.end()
	return t.inner.Rollback()
}

func (t *liteTx) end() {
	if t.c.inTx {
		t.c.inTx = false
		t.c.lock.unlock()
	}
}

// liteStmt is a prepared statement of a liteConn: a handle on the
// connection's cached statement for query. Closing it leaves the statement
// in the cache.
type liteStmt struct {
	c     *liteConn
	query string
}

func (s *liteStmt) Close() error  { return nil }
func (s *liteStmt) NumInput() int { return -1 } // as the driver's: SQLite checks the arguments

func (s *liteStmt) Exec(args []driver.Value) (driver.Result, error) {
	return nil, errors.New("store: Stmt.Exec without a context")
}

func (s *liteStmt) Query(args []driver.Value) (driver.Rows, error) {
	return nil, errors.New("store: Stmt.Query without a context")
}

func (s *liteStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

func (s *liteStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

// lockedRows holds the write lock until the rows of a write statement
// (... RETURNING) are closed, when SQLite finishes the statement.
type lockedRows struct {
	driver.Rows
	done func()
	once sync.Once
}

func holdRows(rows driver.Rows, done func()) driver.Rows {
	if done == nil {
		return rows
	}
	return &lockedRows{Rows: rows, done: done}
}

func (r *lockedRows) Close() error {
	defer r.once.Do(r.done)
	return r.Rows.Close()
}
