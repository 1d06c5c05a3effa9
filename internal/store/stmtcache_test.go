package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// openLite opens a fresh SQLite database with a table t(a, b).
func openLite(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// cachedStmts is how many statements the connection conn keeps prepared,
// and its DB's writer connection.
func cachedStmts(t *testing.T, conn *sql.Conn) (own, writer int) {
	t.Helper()
	if err := conn.Raw(func(dc any) error {
		c := dc.(*liteConn)
		own = c.own.stmts.len()
		if c.w.conn != nil {
			writer = c.w.conn.stmts.len()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return own, writer
}

// A statement run again on a connection reuses what was prepared: the cache
// holds one statement per text, explicit Prepare included, and stays within
// its bound however many texts run. Reads are cached on the pooled
// connection, writes on the writer.
func TestStatementsPreparedOncePerConnection(t *testing.T) {
	db := openLite(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ownBefore, writerBefore := cachedStmts(t, conn)
	for i := 0; i < 10; i++ {
		if _, err := conn.ExecContext(ctx, `INSERT INTO t(a, b) VALUES (?, ?)`, i, "x"); err != nil {
			t.Fatal(err)
		}
		var b string
		if err := conn.QueryRowContext(ctx, `SELECT b FROM t WHERE a = ?`, i).Scan(&b); err != nil || b != "x" {
			t.Fatalf("row %d: %q, %v", i, b, err)
		}
		st, err := conn.PrepareContext(ctx, `SELECT b FROM t WHERE a = ?`)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.QueryRowContext(ctx, i).Scan(&b); err != nil || b != "x" {
			t.Fatalf("prepared, row %d: %q, %v", i, b, err)
		}
		st.Close()
	}
	if own, writer := cachedStmts(t, conn); own-ownBefore != 1 || writer-writerBefore != 1 {
		t.Fatalf("%d reads and %d writes cached for 1 read and 1 write run 10 times each", own-ownBefore, writer-writerBefore)
	}
	for i := 0; i < 2*stmtCacheSize; i++ {
		var n int
		if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) + %d FROM t`, i)).Scan(&n); err != nil || n != 10+i {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
	}
	if got, _ := cachedStmts(t, conn); got != stmtCacheSize {
		t.Fatalf("%d statements cached, want the bound %d", got, stmtCacheSize)
	}
}

// While rows of a statement are open, the same text runs again inside the
// transaction (a nested read, a write) on a statement of its own: the outer
// rows are read to the end, unchanged. Also when the cache lets go of the
// outer statement meanwhile.
func TestCachedStatementInUseIsNotReset(t *testing.T) {
	for _, evict := range []bool{false, true} {
		t.Run(fmt.Sprintf("evict=%v", evict), func(t *testing.T) {
			db := openLite(t)
			ctx := context.Background()
			for i := 0; i < 20; i++ {
				if _, err := db.ExecContext(ctx, `INSERT INTO t(a, b) VALUES (?, ?)`, i, "x"); err != nil {
					t.Fatal(err)
				}
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			const q = `SELECT a FROM t WHERE a >= ? ORDER BY a`
			rows, err := tx.QueryContext(ctx, q, 0)
			if err != nil {
				t.Fatal(err)
			}
			var seen []int
			for rows.Next() {
				var a int
				if err := rows.Scan(&a); err != nil {
					t.Fatal(err)
				}
				seen = append(seen, a)
				var inner int
				if err := tx.QueryRowContext(ctx, q, a).Scan(&inner); err != nil || inner != a {
					t.Fatalf("nested query at %d: %d, %v", a, inner, err)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE t SET b = ? WHERE a = ?`, "y", a); err != nil {
					t.Fatal(err)
				}
				if evict && a == 5 {
					for i := 0; i < stmtCacheSize+1; i++ {
						if _, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE t SET b = b WHERE a = %d`, i)); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			if len(seen) != 20 || seen[19] != 19 {
				t.Fatalf("outer rows read %v, want 0..19", seen)
			}
			// The statement is usable again once its rows are closed.
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM t WHERE b = ?`, "y").Scan(&n); err != nil || n != 20 {
				t.Fatalf("%d rows updated, %v", n, err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A statement cached on one connection still runs, against the new schema,
// after another connection changed the table under it.
func TestCachedStatementAfterSchemaChange(t *testing.T) {
	db := openLite(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const ins = `INSERT INTO t(a, b) VALUES (?, ?)`
	if _, err := conn.ExecContext(ctx, ins, 1, "x"); err != nil {
		t.Fatal(err)
	}
	other, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, `DROP TABLE t; CREATE TABLE t(b TEXT NOT NULL, c TEXT, a INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if _, err := conn.ExecContext(ctx, ins, 2, "y"); err != nil {
		t.Fatalf("cached insert after the table was recreated: %v", err)
	}
	var a int
	var b string
	if err := conn.QueryRowContext(ctx, `SELECT a, b FROM t`).Scan(&a, &b); err != nil || a != 2 || b != "y" {
		t.Fatalf("got %d %q, %v", a, b, err)
	}
}

// Statements prepared per transaction and closed with it (as the audit log's
// appends do) work the same in every transaction on both engines, though
// each connection keeps them prepared; a statement that does not compile
// fails with the server's error, and the connection goes on working.
func TestStatementsPerTransaction(t *testing.T) {
	ctx := context.Background()
	for name, db := range engines(t) {
		t.Run(name, func(t *testing.T) {
			db.SetMaxOpenConns(1) // every transaction on the one connection
			for round := 0; round < 5; round++ {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				ins, err := tx.PrepareContext(ctx, `INSERT INTO certificates(serial, kind, key_id, principals, user_name,
					key_fingerprint, valid_after, valid_before, issued_at) VALUES (?, 'user', ?, 'a', 'alice', 'fp', 0, 1, ?)`)
				if err != nil {
					t.Fatal(err)
				}
				get, err := tx.PrepareContext(ctx, `SELECT COUNT(*) FROM certificates WHERE issued_at = ?`)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 3; i++ {
					if _, err := ins.ExecContext(ctx, round*3+i, fmt.Sprint("k", round, i), round); err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
				}
				var n int
				if err := get.QueryRowContext(ctx, round).Scan(&n); err != nil || n != 3 {
					t.Fatalf("round %d: %d rows, %v", round, n, err)
				}
				ins.Close()
				get.Close()
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			bad, err := db.PrepareContext(ctx, `SELECT no_such_column FROM certificates WHERE serial = ?`)
			if err == nil {
				_, err = bad.ExecContext(ctx, 1)
				bad.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "no_such_column") {
				t.Fatalf("a statement that does not compile: %v", err)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM certificates`).Scan(&n); err != nil || n != 15 {
				t.Fatalf("%d rows after five transactions, %v", n, err)
			}
		})
	}
}
