package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/recorder"
)

// BenchmarkSessionList100k measures the sessions page's queries on 100,000
// sessions (each with 3 recorded commands): the first page, a user's
// sessions, and "command contains".
func BenchmarkSessionList100k(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "gatehouse.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const n = 100_000
	tx, _ := db.Begin()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("s%06d", i)
		rec := fmt.Sprintf("r%06d", i)
		t := start.Add(time.Duration(i) * time.Minute).UnixNano()
		tx.Exec(`INSERT INTO sessions(id, user_name, client_addr, client_version, key_fingerprint, user_cert_serial, target,
			target_kind, login, mode, kind, start_at, end_at, recording_id) VALUES (?, ?, '10.0.0.1:1', 'SSH-2.0-x', 'fp', 1, ?, 'ssh',
			'root', 'direct', 'shell', ?, ?, ?)`, id, fmt.Sprintf("user%03d", i%300), fmt.Sprintf("db-%02d", i%50), t, t+int64(time.Minute), rec)
		if _, err := tx.Exec(`INSERT INTO recordings(id, session_id, user_name, target, login, file, wrapped_key, started, cols, rows,
			interactive) VALUES (?, ?, 'u', 't', 'root', 'f', x'00', ?, 80, 24, 1)`, rec, id, t); err != nil {
			b.Fatal(err)
		}
		for c := 0; c < 3; c++ {
			tx.Exec(`INSERT INTO recording_commands(recording_id, seq, offset_us, time, source, text) VALUES (?, ?, 0, ?, 'screen', ?)`,
				rec, c+1, t, fmt.Sprintf("systemctl status service-%d-%d", i%977, c))
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	ss := recorder.NewSessionStore(db.DB)
	cases := map[string]recorder.SessionFilter{
		"first-page":       {Limit: 50},
		"page-deep":        {Limit: 50, Before: start.Add(20000 * time.Minute)},
		"user":             {User: "user042", Limit: 50},
		"command-contains": {Command: "service-313-2", Limit: 50},
		"command-common":   {Command: "systemctl", Limit: 50}, // every session matches
		"command-short":    {Command: "-9", Limit: 50},        // under 3 characters: no trigram, LIKE scan
	}
	for name, f := range cases {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rows, err := ss.List(context.Background(), f)
				if err != nil || len(rows) == 0 {
					b.Fatalf("%d rows, %v", len(rows), err)
				}
			}
		})
	}
}
