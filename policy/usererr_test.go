package policy

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/usererr"
)

// TestRequestRefusalMessages: each refusal of an access request carries
// the exact one line a person reads (the web shows it as is); a database
// failure carries none, so the front door shows the generic line.
func TestRequestRefusalMessages(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	q := NewRequests(db.DB)
	e := jitEngine().WithGrants(q)
	ctx := context.Background()
	tests := []struct {
		name, role string
		d          time.Duration
		why, want  string
	}{
		{"not requestable", "dev", time.Hour, "x", `role "dev" cannot be requested (requestable roles: dba, root-oncall)`},
		{"too long", "dba", 5 * time.Hour, "x", "role dba can be requested for at most 4h0m0s"},
		{"no reason", "dba", time.Hour, " ", "an access request needs a reason"},
		{"too short", "dba", time.Second, "x", "ask for a duration of at least 10s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := q.Create(ctx, e, "alice", tc.role, tc.d, tc.why)
			if msg, ref := usererr.Message(err); msg != tc.want || ref != "" {
				t.Fatalf("Message = %q (ref %q), want %q", msg, ref, tc.want)
			}
		})
	}
	db.Close()
	_, err = q.Create(ctx, e, "alice", "dba", time.Hour, "INC-1")
	msg, ref := usererr.Message(err)
	if err == nil || ref == "" || !regexp.MustCompile(`^internal error; the operator has the details \(ref [0-9a-f]{8}\)$`).MatchString(msg) {
		t.Fatalf("closed database: err %v, Message %q", err, msg)
	}
}
