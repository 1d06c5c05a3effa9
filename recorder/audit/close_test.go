package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// hangGuard fails the test if fn has not returned within a generous
// deadline, so a regression to blocking fails instead of hanging the run.
func hangGuard(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not return within 60s: it blocks", what)
	}
}

// Append after Close returns ErrClosed at once, even with a context that
// never ends, and writes nothing.
func TestAppendAfterCloseFailsAtOnce(t *testing.T) {
	e := newAuditEnv(t)
	e.append(t, 3)
	if err := e.log.Close(); err != nil {
		t.Fatal(err)
	}
	// Several times: the queue has room, so a send could still be picked
	// over the closed signal if both were offered.
	for i := 0; i < 50; i++ {
		var err error
		hangGuard(t, "Append after Close", func() {
			err = e.log.Append(context.Background(), Event{Type: EventLogin, User: "late"})
		})
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close = %v, want ErrClosed", err)
		}
	}
	if err := e.log.Check(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Check after Close = %v, want ErrClosed", err)
	}
	if rep := e.verify(t, nil); !rep.OK || rep.Events != 3 {
		t.Fatalf("after late appends: %s (want the 3 events written before Close)", rep)
	}
}

// Appends racing Close each either commit (nil, and the event is in the
// log) or get ErrClosed; none blocks, and none is lost after saying nil.
func TestAppendRacingCloseNeverHangs(t *testing.T) {
	e := newAuditEnv(t)
	const n = 400
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = e.log.Append(context.Background(), Event{Type: EventLogin, User: fmt.Sprintf("u%d", i)})
		}()
	}
	close(start)
	hangGuard(t, "Close with appends in flight", func() { e.log.Close() })
	hangGuard(t, "appends racing Close", wg.Wait)
	var ok int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrClosed):
			t.Fatalf("append %d: %v, want nil or ErrClosed", i, err)
		}
	}
	var evs int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM audit_events`).Scan(&evs); err != nil {
		t.Fatal(err)
	}
	if evs != ok {
		t.Fatalf("%d appends said nil but the log holds %d events", ok, evs)
	}
	if rep := e.verify(t, nil); !rep.OK {
		t.Fatalf("after racing Close: %s", rep)
	}
}
