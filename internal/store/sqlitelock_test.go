package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Fifty sessions starting at once each write to the one SQLite file (the
// session certificate, the session row, audit events). None may be refused
// because another writer of the same process holds the lock: they queue for
// it. busy_timeout is cut to 100 ms here so that a writer left to SQLite's
// busy handler (sleep and retry) fails at once instead of after 10 s on a
// loaded machine, as in TestFiftyParallelSessions.
func TestConcurrentWritersQueue(t *testing.T) {
	old := busyTimeoutMS
	busyTimeoutMS = 100
	t.Cleanup(func() { busyTimeoutMS = old })
	db, err := Open(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	const sessions, rounds = 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, sessions*rounds)
	stop := make(chan struct{})
	// Readers run beside the writers the whole time, in and out of
	// read-only transactions.
	var readers sync.WaitGroup
	for r := 0; r < 4; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM certificates`).Scan(&n); err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
			}
		}()
	}
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				serial := int64(s*rounds + r + 1)
				// Autocommit write (auth.Authority.sign).
				if _, err := db.ExecContext(ctx, `INSERT INTO certificates(serial, kind, key_id, principals, user_name,
					session_id, key_fingerprint, valid_after, valid_before, issued_at) VALUES (?, 'session', ?, 'root', 'alice', ?, 'fp', 0, 1, 0)`,
					serial, fmt.Sprint("k", serial), fmt.Sprint("s", serial)); err != nil {
					errs <- fmt.Errorf("session %d: insert: %w", s, err)
					return
				}
				// A transaction that reads, then writes (an audit append).
				if err := func() error {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					defer tx.Rollback()
					var n int
					if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM certificates WHERE user_name = ?`, "alice").Scan(&n); err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, `UPDATE certificates SET issued_at = ? WHERE serial = ?`, n, serial); err != nil {
						return err
					}
					return tx.Commit()
				}(); err != nil {
					errs <- fmt.Errorf("session %d: transaction: %w", s, err)
					return
				}
				// A write through a query (UPDATE ... RETURNING).
				var got int64
				if err := db.QueryRowContext(ctx, `UPDATE certificates SET valid_before = 2 WHERE serial = ? RETURNING serial`, serial).Scan(&got); err != nil || got != serial {
					errs <- fmt.Errorf("session %d: update returning: %d, %v", s, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM certificates WHERE valid_before = 2`).Scan(&n); err != nil || n != sessions*rounds {
		t.Fatalf("%d certificates written, want %d (%v)", n, sessions*rounds, err)
	}
}

// Readers are not queued behind a writer: a read outside the open write
// transaction, on the same file, proceeds while it is open.
func TestReadersDoNotWaitForWriter(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO certificates(serial, kind, key_id, principals, user_name,
		key_fingerprint, valid_after, valid_before, issued_at) VALUES (1, 'session', 'k', 'root', 'alice', 'fp', 0, 1, 0)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM certificates`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("read beside the open write transaction: %d rows, %v (want 0 rows, the write uncommitted)", n, err)
	}
	rtx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := rtx.QueryRowContext(ctx, `SELECT COUNT(*) FROM certificates`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("read-only transaction beside the write transaction: %d rows, %v", n, err)
	}
	rtx.Rollback()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// The lock is free again after the commit: another write goes through.
	if _, err := db.ExecContext(ctx, `DELETE FROM certificates`); err != nil {
		t.Fatal(err)
	}
}
