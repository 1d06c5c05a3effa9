package store

import (
	"container/list"
	"context"
	"database/sql/driver"
)

// modernc.org/sqlite has no statement cache: every Exec or Query parses its
// SQL again, and so does every Prepare — per transaction for the audit log's
// appends, per session for the session, recording and certificate rows. That
// parsing was ~10% of the gateway's CPU per new session
// (docs/performance.md). So each SQLite connection keeps the statements it
// ran prepared, keyed by their text, the way pgx does on PostgreSQL: a query
// is parsed once per pooled connection and then only bound, stepped and
// reset. Every statement still goes to SQLite with its placeholders bound;
// nothing changes but how often the same text is parsed.
//
// A cached statement serves one use at a time. While rows of it are open (a
// query being read inside a transaction that runs other statements meanwhile)
// a second use of the same text gets a statement of its own, finalized when
// it is done. database/sql uses a driver connection from one goroutine at a
// time (each call and each Rows.Close hold its lock), so the cache needs no
// lock of its own.

// stmtCacheSize bounds the statements one connection keeps prepared; the
// least recently used one is finalized past it. The session path runs about
// twenty distinct statements; the web pages and the CLI a few dozen more.
const stmtCacheSize = 64

// cachedStmt is a statement prepared on a liteConn and kept for reuse.
type cachedStmt struct {
	inner driver.Stmt
	query string
	// rowsOpen is set while rows of this statement are open.
	rowsOpen bool
	// evicted is set once the cache let go of it while its rows were open:
	// the rows' Close finalizes it.
	evicted bool
	elem    *list.Element
}

// stmtCache is a liteConn's statements by query text, most recently used
// first in lru.
type stmtCache struct {
	byQuery map[string]*cachedStmt
	lru     list.List
}

// get returns query's cached statement, preparing it on inner if it is not
// cached yet. busy reports that the cached statement's rows are open, so
// the caller must use a statement of its own.
func (sc *stmtCache) get(ctx context.Context, inner driver.Conn, query string) (cs *cachedStmt, busy bool, err error) {
	if cs, ok := sc.byQuery[query]; ok {
		sc.lru.MoveToFront(cs.elem)
		return cs, cs.rowsOpen, nil
	}
	s, err := inner.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, false, err
	}
	if sc.byQuery == nil {
		sc.byQuery = map[string]*cachedStmt{}
	}
	cs = &cachedStmt{inner: s, query: query}
	cs.elem = sc.lru.PushFront(cs)
	sc.byQuery[query] = cs
	for sc.lru.Len() > stmtCacheSize {
		sc.evict(sc.lru.Back().Value.(*cachedStmt))
	}
	return cs, false, nil
}

// evict drops cs from the cache, finalizing it unless its rows are open.
func (sc *stmtCache) evict(cs *cachedStmt) {
	sc.lru.Remove(cs.elem)
	delete(sc.byQuery, cs.query)
	if cs.rowsOpen {
		cs.evicted = true
		return
	}
	cs.inner.Close()
}

// rowsClosed is called when the rows of cs are closed.
func (sc *stmtCache) rowsClosed(cs *cachedStmt) {
	cs.rowsOpen = false
	if cs.evicted {
		cs.inner.Close()
	}
}

// close finalizes every cached statement (the connection is closing).
func (sc *stmtCache) close() {
	for e := sc.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*cachedStmt).inner.Close()
	}
	sc.lru.Init()
	sc.byQuery = nil
}

// len is the number of cached statements.
func (sc *stmtCache) len() int { return sc.lru.Len() }

// cachedRows are the rows of a cached statement: closing them resets the
// statement (the driver's rows do that) and frees it for the next use.
type cachedRows struct {
	driver.Rows
	sc     *stmtCache
	cs     *cachedStmt
	closed bool
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.sc.rowsClosed(r.cs)
	}
	return err
}

// cachedConn is a driver connection with its statement cache.
type cachedConn struct {
	inner driver.Conn
	stmts stmtCache
}

// exec runs query through its cached statement.
func (cc *cachedConn) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, busy, err := cc.stmts.get(ctx, cc.inner, query)
	if err != nil {
		return nil, err
	}
	if busy {
		return cc.inner.(driver.ExecerContext).ExecContext(ctx, query, args)
	}
	return cs.inner.(driver.StmtExecContext).ExecContext(ctx, args)
}

// query runs query through its cached statement.
func (cc *cachedConn) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, busy, err := cc.stmts.get(ctx, cc.inner, query)
	if err != nil {
		return nil, err
	}
	if busy {
		return cc.inner.(driver.QueryerContext).QueryContext(ctx, query, args)
	}
	rows, err := cs.inner.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.rowsOpen = true
	return &cachedRows{Rows: rows, sc: &cc.stmts, cs: cs}, nil
}

// close finalizes the cached statements and closes the connection.
func (cc *cachedConn) close() error {
	cc.stmts.close()
	return cc.inner.Close()
}
