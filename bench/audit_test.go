// Package bench holds Gatehouse's benchmarks: the audit log at a million
// events (this file) and, in sshbench/, OpenSSH side by side with the
// gateway. The audit figures and the command that measured them are in
// docs/audit.md.
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

const million = 1_000_000

var (
	bigOnce sync.Once
	bigDir  string
	bigErr  error
	bigVKey string
	bigTemp bool // bigDir was made here and is removed at exit
)

// TestMain removes the temporary 1M-event log (≈380 MB) after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if bigTemp {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

func openLog(tb testing.TB, dir string) (*store.DB, *audit.Log) {
	db, err := store.Open(filepath.Join(dir, "gatehouse.db"))
	if err != nil {
		tb.Fatal(err)
	}
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	l, err := audit.Open(db, secrets.NewStore(db.DB, kr), audit.Options{CheckpointInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	return db, l
}

// appendMany appends n events from many goroutines (group commit) and
// returns the elapsed time.
func appendMany(tb testing.TB, l *audit.Log, n int) time.Duration {
	const workers = 256
	start := time.Now()
	var wg sync.WaitGroup
	per := n / workers
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				k := w*per + i
				err := l.Append(context.Background(), audit.Event{Type: audit.EventCommand,
					User: fmt.Sprintf("user%03d", k%500), Target: fmt.Sprintf("db-%02d", k%40), Login: "root",
					SessionID: fmt.Sprintf("s%06d", k/20), ClientAddr: "10.1.2.3:5555",
					Details: map[string]any{"command": fmt.Sprintf("ls -la /srv/%d", k), "source": "screen"}})
				if err != nil {
					tb.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// bigLog builds (once per process) a log of one million events.
func bigLog(tb testing.TB) string {
	bigOnce.Do(func() {
		// GATEHOUSE_AUDIT_BENCH_DIR keeps the log between runs (it takes
		// minutes to build); otherwise it goes to a fresh temporary directory.
		bigDir = os.Getenv("GATEHOUSE_AUDIT_BENCH_DIR")
		if bigDir == "" {
			bigDir, bigErr = os.MkdirTemp("", "gatehouse-audit-bench-")
			if bigErr != nil {
				return
			}
			bigTemp = true
		}
		db, l := openLog(tb, bigDir)
		if evs, err := l.Query(context.Background(), audit.Filter{Limit: 1, Desc: true}); err != nil || len(evs) == 0 || evs[0].ID < million-256 {
			d := appendMany(tb, l, million)
			tb.Logf("built %d events in %v (%.0f events/s)", million, d, million/d.Seconds())
		}
		bigVKey = l.VerifierKey()
		l.Close()
		db.Close()
	})
	if bigErr != nil {
		tb.Fatal(bigErr)
	}
	return bigDir
}

func BenchmarkAuditAppend(b *testing.B) {
	db, l := openLog(b, b.TempDir())
	defer db.Close()
	defer l.Close()
	b.ResetTimer()
	d := appendMany(b, l, b.N)
	b.ReportMetric(float64(b.N)/d.Seconds(), "events/s")
}

func BenchmarkExportCSV1M(b *testing.B) {
	dir := bigLog(b)
	db, l := openLog(b, dir)
	defer db.Close()
	defer l.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := l.Export(context.Background(), audit.ExportOptions{Format: "csv", Dir: filepath.Join(b.TempDir(), "x")})
		if err != nil || m.Count < million-256 {
			b.Fatalf("export %d events: %v", m.Count, err)
		}
	}
}

func BenchmarkVerify1M(b *testing.B) {
	dir := bigLog(b)
	db, _ := openLog(b, dir)
	defer db.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := audit.VerifyChain(context.Background(), db.DB, bigVKey, nil)
		if err != nil || !rep.OK || rep.Events < million-256 {
			b.Fatalf("verify: %v %s", err, rep)
		}
	}
}

func BenchmarkQueryFiltered1M(b *testing.B) {
	dir := bigLog(b)
	db, l := openLog(b, dir)
	defer db.Close()
	defer l.Close()
	filters := map[string]audit.Filter{
		"user":        {User: "user123", Limit: 100, Desc: true},
		"target+time": {Target: "db-07", Since: time.Now().Add(-time.Hour), Limit: 100, Desc: true},
		"type":        {Type: audit.EventCommand, Limit: 100, Desc: true},
		"session":     {SessionID: "s012345"},
	}
	for name, f := range filters {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				evs, err := l.Query(context.Background(), f)
				if err != nil || len(evs) == 0 {
					b.Fatalf("query: %d events, %v", len(evs), err)
				}
			}
		})
	}
}
