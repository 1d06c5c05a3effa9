package policy

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

func jitEngine() *Engine {
	return New(Policy{
		Roles: []Role{
			{Name: "dev", Allow: Rules{Targets: Selector{Names: []string{"web-*"}}, Logins: []string{"deploy"}}},
			{Name: "dba", Allow: Rules{Targets: Selector{Names: []string{"db-*"}}, Logins: []string{"postgres"}},
				Options: RoleOptions{Requestable: true, MaxRequestTTL: 4 * time.Hour}},
			{Name: "root-oncall", Allow: Rules{Targets: Selector{Names: []string{"*"}}, Logins: []string{"root"}},
				Options: RoleOptions{Requestable: true, ApprovalsRequired: 2}},
			{Name: "nodb", Deny: Rules{Targets: Selector{Names: []string{"db-secret"}}}},
			{Name: "lead", Options: RoleOptions{ReviewRequests: []string{"dba", "root-oncall"}}},
		},
		Bindings: []Binding{
			{User: "alice", Roles: []string{"dev"}},
			{User: "carol", Roles: []string{"lead", "dev"}},
			{User: "dave", Roles: []string{"lead"}},
			{User: "erin", Roles: []string{"dev", "nodb"}},
		},
	})
}

// TestRequests walks a request through its life against real SQLite: the
// grant is an input of decisions, self-approval and non-reviewers are
// refused, two approvals are needed where configured, and grants expire.
func TestRequests(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	q := NewRequests(db.DB)
	q.Now = func() time.Time { return now }
	e := jitEngine().WithGrants(q)
	ctx := context.Background()
	db1 := Request{User: "alice", Target: Target{Name: "db-1"}, Login: "postgres"}

	if d := e.Check(db1); d.Allowed {
		t.Fatal("allowed before any grant")
	}
	if got := e.RequestHint(db1); got != "dba" {
		t.Fatalf("hint %q, want dba", got)
	}
	if got := e.RequestHint(Request{User: "erin", Target: Target{Name: "db-secret"}, Login: "postgres"}); got != "" {
		t.Fatalf("a hint for a login a bound deny rule refuses: %q", got)
	}
	// alice may already log in as deploy on web-1: a command refusal there
	// gets no hint.
	if got := e.RequestHint(Request{User: "alice", Target: Target{Name: "web-1"}, Login: "deploy", Command: "x"}); got != "" {
		t.Fatalf("a hint for a login alice already has: %q", got)
	}
	if _, err := q.Create(ctx, e, "alice", "dev", time.Hour, "x"); err == nil {
		t.Fatal("a role that is not requestable was requested")
	}
	if _, err := q.Create(ctx, e, "alice", "dba", 5*time.Hour, "x"); err == nil {
		t.Fatal("a request longer than max_request_ttl was accepted")
	}
	if _, err := q.Create(ctx, e, "alice", "dba", time.Hour, "  "); !errors.Is(err, ErrRequestNeedsWhy) {
		t.Fatalf("no reason: %v", err)
	}
	ar, err := q.Create(ctx, e, "alice", "dba", time.Hour, "INC-42 vacuum")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Approve(ctx, e, ar.ID, "alice", nil); !errors.Is(err, ErrSelfApproval) {
		t.Fatalf("self-approval: %v", err)
	}
	if _, _, err := q.Approve(ctx, e, ar.ID, "erin", nil); !errors.Is(err, ErrNotReviewer) {
		t.Fatalf("approval by a non-reviewer: %v", err)
	}
	if list, _ := q.Reviewable(ctx, e, "carol", nil); len(list) != 1 || list[0].ID != ar.ID {
		t.Fatalf("carol's pending list: %+v", list)
	}
	if _, granted, err := q.Approve(ctx, e, ar.ID, "carol", nil); err != nil || !granted {
		t.Fatalf("approve: %v %v", granted, err)
	}
	d := e.Check(db1)
	if !d.Allowed || len(d.Granted) != 1 || d.Granted[0] != "dba" {
		t.Fatalf("after approval: %+v", d)
	}
	// A grant never makes a reviewer, and a decided request stays decided.
	if _, _, err := q.Approve(ctx, e, ar.ID, "dave", nil); !errors.Is(err, ErrNotPending) {
		t.Fatalf("second approval of an approved request: %v", err)
	}

	// Two approvals required: one is not enough.
	two, _ := q.Create(ctx, e, "alice", "root-oncall", 30*time.Minute, "pager")
	if _, granted, err := q.Approve(ctx, e, two.ID, "carol", nil); err != nil || granted {
		t.Fatalf("first of two approvals: granted=%v %v", granted, err)
	}
	if _, _, err := q.Approve(ctx, e, two.ID, "carol", nil); !errors.Is(err, ErrAlreadyApproved) {
		t.Fatalf("same approver twice: %v", err)
	}
	root := Request{User: "alice", Target: Target{Name: "web-1"}, Login: "root"}
	if e.Check(root).Allowed {
		t.Fatal("one approval of two granted access")
	}
	if _, granted, err := q.Approve(ctx, e, two.ID, "dave", nil); err != nil || !granted {
		t.Fatalf("second approval: granted=%v %v", granted, err)
	}
	if !e.Check(root).Allowed {
		t.Fatal("two approvals did not grant")
	}

	// Deny.
	third, _ := q.Create(ctx, e, "alice", "dba", time.Hour, "again")
	if _, err := q.Deny(ctx, e, third.ID, "alice", nil, ""); !errors.Is(err, ErrSelfApproval) {
		t.Fatalf("self-deny: %v", err)
	}
	if got, err := q.Deny(ctx, e, third.ID, "dave", nil, "you already have it"); err != nil || got.State != RequestDenied {
		t.Fatalf("deny: %+v %v", got, err)
	}

	// Expiry: the grant ends at its time even before a sweep; the sweep
	// reports it once; another gateway's fresh store sees the same.
	now = now.Add(30 * time.Minute)
	if e.Check(root).Allowed {
		t.Fatal("root-oncall grant outlived its 30m")
	}
	if !e.Check(db1).Allowed {
		t.Fatal("dba grant ended early")
	}
	exp, err := q.ExpireDue(ctx, e)
	if err != nil || len(exp) != 1 || exp[0].Role != "root-oncall" {
		t.Fatalf("expired: %+v %v", exp, err)
	}
	if exp, _ := q.ExpireDue(ctx, e); len(exp) != 0 {
		t.Fatalf("expired twice: %+v", exp)
	}
	other := NewRequests(db.DB)
	other.Now = q.Now
	if err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := other.GrantedRoles("alice"); len(got) != 1 || got[0] != "dba" {
		t.Fatalf("grants seen by another store: %v", got)
	}
	now = now.Add(time.Hour)
	if e.Check(db1).Allowed {
		t.Fatal("dba grant outlived its hour")
	}
	mine, _ := q.ForUser(ctx, e, "alice")
	states := map[string]int{}
	for _, r := range mine {
		states[r.State]++
	}
	if states[RequestExpired] != 2 || states[RequestDenied] != 1 {
		t.Fatalf("alice's requests: %v", states)
	}
}
