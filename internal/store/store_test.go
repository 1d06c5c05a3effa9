package store

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedPostgres()
	os.Exit(code)
}

// engines opens a fresh database on each engine.
func engines(t *testing.T) map[string]*DB {
	t.Helper()
	lite, err := Open(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	pg, err := OpenURL(context.Background(), testenv.SharedPostgres(t).NewDatabase(t), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return map[string]*DB{SQLite: lite, Postgres: pg}
}

// Both engines have the same migration numbers and names: a migration added
// for one engine only would leave the other a schema behind.
func TestMigrationsPairUp(t *testing.T) {
	lite, err := migrations(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := migrations(Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL migrations", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Errorf("migration %d: %s (SQLite) vs %s (PostgreSQL)", i, lite[i].name, pg[i].name)
		}
	}
}

// Values the code writes come back unchanged on both engines: flags written
// as Go bools, BLOBs with every byte value (and empty), 64-bit integers at
// their extremes (certificate serials use all 64 bits), and text with
// quotes, question marks and non-ASCII.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	blob := make([]byte, 256)
	for i := range blob {
		blob[i] = byte(i)
	}
	for name, db := range engines(t) {
		t.Run(name, func(t *testing.T) {
			for i, serial := range []int64{math.MinInt64, -1, 0, math.MaxInt64} {
				if _, err := db.ExecContext(ctx, `INSERT INTO certificates(serial, kind, key_id, principals, user_name,
					key_fingerprint, valid_after, valid_before, issued_at) VALUES (?, 'user', ?, 'a,b', 'alice', 'fp', ?, ?, ?)`,
					serial, "key '?' é "+strings.Repeat("x", i), int64(i), serial, int64(1)<<62); err != nil {
					t.Fatal(err)
				}
				var got, before int64
				var keyID string
				if err := db.QueryRowContext(ctx, `SELECT serial, key_id, valid_before FROM certificates WHERE serial = ?`, serial).
					Scan(&got, &keyID, &before); err != nil {
					t.Fatal(err)
				}
				if got != serial || before != serial || keyID != "key '?' é "+strings.Repeat("x", i) {
					t.Fatalf("serial %d came back as %d / %d / %q", serial, got, before, keyID)
				}
			}
			for _, v := range [][]byte{blob, {}} {
				if _, err := db.ExecContext(ctx, `INSERT INTO secrets(name, value, created_at) VALUES (?, ?, ?)`,
					"s"+string(rune('a'+len(v)%26)), v, 1); err != nil {
					t.Fatal(err)
				}
			}
			var got []byte
			if err := db.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, "s"+string(rune('a'+256%26))).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, blob) {
				t.Fatalf("blob came back as %x", got)
			}
			for _, flag := range []bool{true, false} {
				id := "r" + map[bool]string{true: "1", false: "0"}[flag]
				if _, err := db.ExecContext(ctx, `INSERT INTO recordings(id, session_id, user_name, target, login, file,
					wrapped_key, started, complete, cols, rows, interactive) VALUES (?, 's', 'u', 't', 'l', 'f', ?, 1, ?, 80, 24, ?)`,
					id, []byte{0}, flag, !flag); err != nil {
					t.Fatal(err)
				}
				var complete, interactive bool
				if err := db.QueryRowContext(ctx, `SELECT complete, interactive FROM recordings WHERE id = ? AND complete = ?`, id, flag).
					Scan(&complete, &interactive); err != nil {
					t.Fatal(err)
				}
				if complete != flag || interactive == flag {
					t.Fatalf("flags %v came back as %v, %v", flag, complete, interactive)
				}
			}
		})
	}
}

// Several instances starting at once on one PostgreSQL database migrate it
// once: the advisory lock serialises them, and each sees the final schema.
func TestConcurrentMigrate(t *testing.T) {
	url := testenv.SharedPostgres(t).NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := OpenURL(context.Background(), url, t.TempDir(), nil)
			if err != nil {
				errs <- err
				return
			}
			db.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	db, err := OpenURL(context.Background(), url, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, _ := migrations(Postgres)
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("%d migrations recorded, want %d", n, len(ms))
	}
}

// A URL without sslmode gets verify-full; an explicit mode is kept (and
// OpenURL warns about it). A password never appears in an error.
func TestPostgresURL(t *testing.T) {
	u, mode, err := PostgresURL("postgres://gh:secret@db.example:5432/gh")
	if err != nil || mode != "verify-full" || !strings.Contains(u, "sslmode=verify-full") {
		t.Fatalf("got %q %q %v", u, mode, err)
	}
	_, mode, _ = PostgresURL("postgres://gh@db.example/gh?sslmode=disable")
	if mode != "disable" {
		t.Fatalf("explicit sslmode became %q", mode)
	}
	_, err = OpenURL(context.Background(), "mysql://gh:secret@db/gh", t.TempDir(), nil)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("bad scheme: %v", err)
	}
}

// Without the test CA, verify-full refuses the server's certificate: the
// default does not silently fall back to an unverified connection.
func TestPostgresVerifiesCertificate(t *testing.T) {
	pg := testenv.SharedPostgres(t)
	url := pg.NewDatabase(t)
	bare := strings.Replace(url, "sslrootcert=", "sslrootcert_unused=", 1)
	bare = strings.Split(bare, "?")[0]
	_, err := OpenURL(context.Background(), bare, t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connection without the CA: %v", err)
	}
	if strings.Contains(err.Error(), pg.Password) {
		t.Fatalf("error shows the password: %v", err)
	}
}

// An operator-chosen sslmode weaker than verify-full still connects (their
// call) but is logged as a warning at every open.
func TestWeakSSLModeWarns(t *testing.T) {
	url := testenv.SharedPostgres(t).NewDatabase(t)
	weak := strings.Replace(url, "sslmode=verify-full", "sslmode=require", 1)
	var logs bytes.Buffer
	db, err := OpenURL(context.Background(), weak, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "sslmode=require") {
		t.Fatalf("no warning for sslmode=require: %q", logs.String())
	}
	logs.Reset()
	if db, err = OpenURL(context.Background(), url, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if logs.Len() != 0 {
		t.Fatalf("verify-full logged %q", logs.String())
	}
}
