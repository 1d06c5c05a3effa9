package policy

import (
	"strings"
	"testing"
)

// Grants agrees with Logins and names the roles behind each login.
func TestGrantsNameRoles(t *testing.T) {
	cfg := Policy{
		Roles: []Role{
			{Name: "dba", Allow: Rules{Targets: Selector{Labels: map[string]string{"role": "db"}}, Logins: []string{"postgres", "root"}}},
			{Name: "ops", Allow: Rules{Targets: Selector{Names: []string{"*"}}, Logins: []string{"root"}},
				Deny: Rules{Targets: Selector{Names: []string{"db-2"}}}},
		},
		Bindings: []Binding{{User: "alice", Roles: []string{"dba", "ops"}}},
	}
	e := New(cfg)
	db1 := Target{Name: "db-1", Labels: map[string]string{"role": "db"}}
	got := e.Grants("alice", nil, db1)
	if len(got) != 2 || got[0].Login != "postgres" || strings.Join(got[0].Roles, ",") != "dba" ||
		got[1].Login != "root" || strings.Join(got[1].Roles, ",") != "dba,ops" {
		t.Fatalf("grants on db-1: %+v", got)
	}
	if g := e.Grants("alice", nil, Target{Name: "db-2", Labels: map[string]string{"role": "db"}}); len(g) != 0 {
		t.Fatalf("deny ignored: %+v", g)
	}
	if l := e.Logins("alice", nil, db1); strings.Join(l, ",") != "postgres,root" {
		t.Fatalf("Logins disagrees: %v", l)
	}
}
