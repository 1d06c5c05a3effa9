package bench

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/recorder"
)

// BenchmarkSessionList100k measures the sessions page's queries on 100,000
// sessions (each with 3 recorded commands): the first page, a user's
// sessions, and "command contains" (selective, common, and under three
// characters).
func BenchmarkSessionList100k(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "gatehouse.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := InsertSessions(db.DB, 100_000); err != nil {
		b.Fatal(err)
	}
	ss := recorder.NewSessionStore(db.DB)
	cases := map[string]recorder.SessionFilter{
		"first-page":       {Limit: 50},
		"page-deep":        {Limit: 50, Before: FixtureStart.Add(20000 * time.Minute)},
		"user":             {User: "user042", Limit: 50},
		"command-contains": {Command: "service-313-2", Limit: 50},
		"command-common":   {Command: "systemctl", Limit: 50}, // every session matches
		"command-short":    {Command: "-9", Limit: 50},        // under 3 characters: no trigram, LIKE scan
	}
	for name, f := range cases {
		b.Run(name, func(b *testing.B) {
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				rows, err := ss.List(context.Background(), f)
				if err != nil || len(rows) == 0 {
					b.Fatalf("%d rows, %v", len(rows), err)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU is this process's user and system CPU time: less sensitive
// than wall time to other work on a shared machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
