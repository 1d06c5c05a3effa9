package bench

import (
	"context"
	"path/filepath"
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
			cpu0 := ProcessCPU()
			for i := 0; i < b.N; i++ {
				rows, err := ss.List(context.Background(), f)
				if err != nil || len(rows) == 0 {
					b.Fatalf("%d rows, %v", len(rows), err)
				}
			}
			b.ReportMetric(float64(ProcessCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}
