package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/bench"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/recordertest"
)

// commandSearch fills a fresh database with n sessions (3 commands each)
// and times the sessions page's "command contains" query: median of 20, for
// a selective text and for one every session matches.
//
// The filled database is kept as $TMPDIR/gatehouse-bench-search-N.db and
// reused by the next run (writing 300,000 commands takes minutes on a busy
// machine); it is migrated to the current schema when opened.
func (e *env) commandSearch(n int) (selective, common time.Duration, err error) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("gatehouse-bench-search-%d.db", n))
	db, err := store.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer func() { db.Close() }()
	if have, _ := recordertest.CountSessions(context.Background(), db.DB); have != n {
		// Filled for another size: start again from an empty file.
		db.Close()
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, 0, err
			}
		}
		if db, err = store.Open(path); err != nil {
			return 0, 0, err
		}
		t0 := time.Now()
		if err := bench.InsertSessions(db.DB, n); err != nil {
			return 0, 0, err
		}
		fmt.Fprintf(os.Stderr, "command search: %d sessions written in %v (kept in %s)\n", n, time.Since(t0).Round(time.Millisecond), path)
	}
	ss := recorder.NewSessionStore(db.DB)
	var cpuNote []string
	time1 := func(text string) (time.Duration, error) {
		var ds []time.Duration
		cpu0 := bench.ProcessCPU()
		for i := 0; i < 20; i++ {
			start := time.Now()
			rows, err := ss.List(context.Background(), recorder.SessionFilter{Command: text, Limit: 50})
			if err != nil {
				return 0, err
			}
			if len(rows) == 0 {
				return 0, fmt.Errorf("no session has a command containing %q", text)
			}
			ds = append(ds, time.Since(start))
		}
		cpuNote = append(cpuNote, fmt.Sprintf("%q %.1f ms", text, float64(bench.ProcessCPU()-cpu0)/float64(time.Millisecond)/20))
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2], nil
	}
	defer func() { e.searchCPU = "CPU per query: " + strings.Join(cpuNote, ", ") }()
	if selective, err = time1("service-313-2"); err != nil {
		return 0, 0, err
	}
	common, err = time1("systemctl")
	return selective, common, err
}
