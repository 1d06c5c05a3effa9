package audit

import (
	"context"
	"testing"
	"time"
)

// Two writers on one database (the gateway and a CLI command, or two logs
// in one process) take turns; neither mistakes the other's head for a
// rewrite, and the log verifies.
func TestAuditTwoWritersTakeTurns(t *testing.T) {
	e := newAuditEnv(t)
	// The gateway started on an empty log and checkpointed it before any
	// event (a size-0 head).
	if _, err := e.log.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	other, err := Open(e.db, e.sec, Options{CheckpointInterval: -1, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Append(context.Background(), Event{Type: EventLogin, User: "first"}); err != nil {
		t.Fatalf("first append after an empty checkpoint by another writer: %v", err)
	}
	for i := 0; i < 5; i++ {
		e.append(t, 3)
		if err := other.Append(context.Background(), Event{Type: EventLogin, User: "cli"}); err != nil {
			t.Fatalf("round %d: other writer: %v", i, err)
		}
		if i == 2 {
			if _, err := other.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	e.append(t, 2)
	third, err := Open(e.db, e.sec, Options{CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := third.Append(context.Background(), Event{Type: EventLogin, User: "third"}); err != nil {
		t.Fatal(err)
	}
	third.Close()
	if rep := e.verify(t, nil); !rep.OK {
		t.Fatalf("two writers: %s", rep)
	}
}
