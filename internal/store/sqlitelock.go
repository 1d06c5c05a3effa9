package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

// writeKinds memoizes execWrites and queryWrites by query text (bit 1 and
// bit 2); at most maxWriteKinds texts are kept (queries built at run time
// are classified anew each time past it).
var (
	writeKinds     sync.Map
	writeKindsSize atomic.Int64
)

const maxWriteKinds = 4096

// classify returns execWrites(query) and queryWrites(query).
func classify(query string) (execW, queryW bool) {
	if v, ok := writeKinds.Load(query); ok {
		k := v.(uint8)
		return k&1 != 0, k&2 != 0
	}
	execW, queryW = execWrites(query), queryWrites(query)
	if writeKindsSize.Load() < maxWriteKinds {
		var k uint8
		if execW {
			k |= 1
		}
		if queryW {
			k |= 2
		}
		if _, loaded := writeKinds.LoadOrStore(query, k); !loaded {
			writeKindsSize.Add(1)
		}
	}
	return execW, queryW
}

// Every write of a DB runs on one SQLite connection, its writer. A
// connection's page cache is dropped whenever another connection has
// written since its last transaction, so with writes spread over the pool
// every write first read back the pages it changes (+40% CPU per write
// with 16 connections against one, docs/performance.md). The writer is the
// only connection of this process that writes, so its cache stays warm
// between writes. It is used only by whoever holds the file's writeLock, for
// one write statement or one write transaction; reads outside a write
// transaction run on the pooled connection database/sql handed out, beside
// the writer, as before.
type sqliteWriter struct {
	lock writeLock
	open func() (driver.Conn, error)
	conn *cachedConn // opened on first use; guarded by lock
}

// get returns the writer connection, opening it if needed. The caller holds
// lock.
func (w *sqliteWriter) get() (*cachedConn, error) {
	if w.conn == nil {
		conn, err := w.open()
		if err != nil {
			return nil, err
		}
		w.conn = &cachedConn{inner: conn}
	}
	return w.conn, nil
}

// check drops the writer connection after err said it is unusable, so the
// next writer opens a new one. The caller holds lock.
func (w *sqliteWriter) check(err error) {
	if errors.Is(err, driver.ErrBadConn) && w.conn != nil {
		w.conn.close()
		w.conn = nil
	}
}

// close closes the writer connection once no one writes on it.
func (w *sqliteWriter) close() error {
	if err := w.lock.lock(context.Background()); err != nil {
		return err // a writer still holds it: leave the connection be
	}
	defer w.lock.unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.close()
	w.conn = nil
	return err
}

// sqliteConnector opens modernc.org/sqlite connections to one file and wraps
// each so its writes run on the DB's writer connection under the file's
// writeLock.
type sqliteConnector struct {
	dsn string
	drv *sqlite.Driver
	w   *sqliteWriter
}

func newSQLiteConnector(dsn, path string) driver.Connector {
	c := &sqliteConnector{dsn: dsn, drv: &sqlite.Driver{}}
	c.w = &sqliteWriter{lock: writeLockFor(path), open: func() (driver.Conn, error) { return c.drv.Open(c.dsn) }}
	return c
}

func (c *sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &liteConn{own: cachedConn{inner: conn}, w: c.w}, nil
}

func (c *sqliteConnector) Driver() driver.Driver { return c.drv }

// Close closes the writer connection (database/sql calls it from DB.Close).
func (c *sqliteConnector) Close() error { return c.w.close() }

// liteConn is a pooled SQLite connection. Its reads run on its own
// connection; its writes outside a transaction, and its write transactions,
// run on the writer connection while holding the file's writeLock. A
// read-only transaction runs on its own connection (a write in it takes the
// lock for that statement, as outside a transaction). database/sql uses a
// driver.Conn from one goroutine at a time, so the fields need no lock.
type liteConn struct {
	own cachedConn
	w   *sqliteWriter
	// tx is the open write transaction and wtx the writer connection it
	// runs on; roTx is set while a read-only transaction is open.
	tx   driver.Tx
	wtx  *cachedConn
	roTx bool
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

// PrepareContext returns a handle that runs query on the connection it
// belongs to (its own for reads, the writer for writes and inside a write
// transaction) through that connection's statement cache. A read, or any
// statement inside a write transaction, is prepared now, so a bad one fails
// here; a write outside a transaction fails at its first run.
func (c *liteConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var err error
	switch execW, queryW := classify(query); {
	case c.wtx != nil:
		_, _, err = c.wtx.stmts.get(ctx, c.wtx.inner, query)
	case !execW && !queryW || c.roTx:
		_, _, err = c.own.stmts.get(ctx, c.own.inner, query)
	}
	if err != nil {
		return nil, err
	}
	return &liteStmt{c: c, query: query}, nil
}

// Close closes the connection, rolling back a write transaction left open
// (database/sql ends it first; this only makes sure the lock is let go).
func (c *liteConn) Close() error {
	if c.tx != nil {
		(&liteTx{inner: c.tx, c: c}).Rollback()
	}
	return c.own.close()
}

func (c *liteConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins a read-write transaction (BEGIN IMMEDIATE) on the writer
// connection, holding the write lock until it commits or rolls back. A
// read-only one (plain BEGIN, reads only) runs on the connection's own and
// takes no lock.
func (c *liteConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly {
		tx, err := c.own.inner.(driver.ConnBeginTx).BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		c.roTx = true
		return &roTx{inner: tx, c: c}, nil
	}
	wc, err := c.lockedWriter(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := wc.inner.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		c.w.check(err)
		c.w.lock.unlock()
		return nil, err
	}
	c.tx, c.wtx = tx, wc
	return &liteTx{inner: tx, c: c}, nil
}

// lockedWriter takes the write lock and returns the writer connection for
// one write statement; the caller releases the lock.
func (c *liteConn) lockedWriter(ctx context.Context) (*cachedConn, error) {
	if err := c.w.lock.lock(ctx); err != nil {
		return nil, err
	}
	wc, err := c.w.get()
	if err != nil {
		c.w.lock.unlock()
		return nil, err
	}
	return wc, nil
}

func (c *liteConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.wtx != nil {
		return c.wtx.exec(ctx, query, args)
	}
	if execW, _ := classify(query); !execW {
		return c.own.exec(ctx, query, args)
	} else if c.roTx {
		// A write inside a read-only transaction runs in it, under the lock.
		if err := c.w.lock.lock(ctx); err != nil {
			return nil, err
		}
		defer c.w.lock.unlock()
		return c.own.exec(ctx, query, args)
	}
	wc, err := c.lockedWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer c.w.lock.unlock()
	res, err := wc.exec(ctx, query, args)
	c.w.check(err)
	return res, err
}

func (c *liteConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.wtx != nil {
		return c.wtx.query(ctx, query, args)
	}
	_, queryW := classify(query)
	if !queryW {
		return c.own.query(ctx, query, args)
	}
	on := &c.own
	if c.roTx {
		if err := c.w.lock.lock(ctx); err != nil {
			return nil, err
		}
	} else {
		wc, err := c.lockedWriter(ctx)
		if err != nil {
			return nil, err
		}
		on = wc
	}
	rows, err := on.query(ctx, query, args)
	if err != nil {
		if on != &c.own {
			c.w.check(err)
		}
		c.w.lock.unlock()
		return nil, err
	}
	return holdRows(rows, c.w.lock.unlock), nil
}

func (c *liteConn) Ping(ctx context.Context) error { return c.own.inner.(driver.Pinger).Ping(ctx) }

func (c *liteConn) ResetSession(ctx context.Context) error {
	return c.own.inner.(driver.SessionResetter).ResetSession(ctx)
}

func (c *liteConn) IsValid() bool { return c.own.inner.(driver.Validator).IsValid() }

// liteTx is a write transaction on the writer connection. It releases the
// write lock when it ends, whether or not the COMMIT or ROLLBACK succeeded
// (the driver leaves the connection out of any transaction either way).
type liteTx struct {
	inner driver.Tx
	c     *liteConn
}

func (t *liteTx) Commit() error {
	defer t.end()
	err := t.inner.Commit()
	t.c.w.check(err)
	return err
}

func (t *liteTx) Rollback() error {
	defer t.end()
	err := t.inner.Rollback()
	t.c.w.check(err)
	return err
}

func (t *liteTx) end() {
	if t.c.tx != nil {
		t.c.tx, t.c.wtx = nil, nil
		t.c.w.lock.unlock()
	}
}

// roTx is a read-only transaction on the connection's own.
type roTx struct {
	inner driver.Tx
	c     *liteConn
}

func (t *roTx) Commit() error {
	t.c.roTx = false
	return t.inner.Commit()
}

func (t *roTx) Rollback() error {
	t.c.roTx = false
	return t.inner.Rollback()
}

// liteStmt is a prepared statement of a liteConn: a handle on the cached
// statement for query of the connection it runs on. Closing it leaves the
// statement in the cache.
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
