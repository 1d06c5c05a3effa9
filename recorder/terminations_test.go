package recorder

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store/storetest"
)

// TestTerminationRequests: on both engines, a request is seen by every
// instance's poll until the instance that ran the session clears it; a
// second request for the same session keeps the first reason; a request
// nobody answers is dropped after TerminationTTL.
func TestTerminationRequests(t *testing.T) {
	for name, db := range storetest.Engines(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a, b := NewSessionStore(db.DB), NewSessionStore(db.DB) // two instances
			now := time.Unix(1_800_000_000, 0)
			if err := b.RequestTermination(ctx, TerminationRequest{SessionID: "s1", Reason: "stop (admin)", RequestedBy: "admin", Created: now}); err != nil {
				t.Fatal(err)
			}
			if err := b.RequestTermination(ctx, TerminationRequest{SessionID: "s1", Reason: "again", RequestedBy: "other", Created: now}); err != nil {
				t.Fatalf("a second request for the same session: %v", err)
			}
			b.RequestTermination(ctx, TerminationRequest{SessionID: "s2", Reason: "old", RequestedBy: "admin", Created: now.Add(-TerminationTTL - time.Second)})
			reqs, err := a.TerminationRequests(ctx, now)
			if err != nil || len(reqs) != 1 || reqs[0].SessionID != "s1" || reqs[0].Reason != "stop (admin)" || reqs[0].RequestedBy != "admin" {
				t.Fatalf("requests seen by A: %+v %v", reqs, err)
			}
			if err := a.TerminationDone(ctx, "s1"); err != nil {
				t.Fatal(err)
			}
			if reqs, err := b.TerminationRequests(ctx, now); err != nil || len(reqs) != 0 {
				t.Fatalf("requests after A ended the session: %+v %v", reqs, err)
			}
		})
	}
}
