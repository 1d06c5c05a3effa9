package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/recorder"
)

// TestMaxSessionsPerUser: with max_sessions: 1 a second session is refused
// with a line saying why while the first runs, and allowed once it ended.
func TestMaxSessionsPerUser(t *testing.T) {
	w := newWorld(t, "")
	lina := w.newUser("lina", time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := lina.cmd(ctx, "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; sleep 300")
	var out syncBuffer
	first.Stdout = &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first session", func() bool { return strings.Contains(out.String(), "started") })
	want := "gatehouse: too many sessions: you have 1 open and your roles allow 1 at once (max_sessions); end one first"
	if r := lina.direct("root", "db-1", "echo second"); r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("second session: %s\nwant %q", r, want)
	}
	evs, _ := w.app.Audit.Query(context.Background(), recorder.Filter{Type: recorder.EventSessionDenied, User: "lina"})
	if len(evs) != 1 || !strings.HasPrefix(evs[0].Reason, "too many sessions") {
		t.Fatalf("session.denied events: %+v", evs)
	}
	cancel()
	first.Wait()
	waitFor(t, "a session once the first ended", func() bool {
		r := lina.direct("root", "db-1", "echo second")
		return r.code == 0 && r.stdout == "second\n"
	})
}
