// Package bench holds Gatehouse's benchmarks (go test -bench) and the data
// they share with the side-by-side driver in bench/sshbench.
package bench

import (
	"context"
	"database/sql"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/recorder/recordertest"
)

// FixtureStart is the start time of the first fixture session.
var FixtureStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// InsertSessions writes n ended sessions a minute apart from FixtureStart,
// each with a recording and 3 recorded commands
// ("systemctl status service-<i%977>-<c>"), in one transaction.
func InsertSessions(db *sql.DB, n int) error {
	return recordertest.InsertSessions(context.Background(), db, FixtureStart, n)
}

// ProcessCPU is this process's user and system CPU time: on a shared machine
// it says what a piece of work costs better than its wall time does.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
