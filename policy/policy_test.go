package policy

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

const testConfig = `
roles:
  - name: dba
    allow:
      targets: {labels: {role: db}}
      logins: [postgres, root]
    options: {sftp: true, max_session_ttl: 8h, cert_ttl: 4h}
  - name: dev
    allow:
      targets: {names: ["web-*"]}
      logins: ["*"]
    deny:
      logins: [root]
    options: {port_forwarding: true, idle_timeout: 30m}
  - name: prod-lock
    deny:
      targets: {labels: {env: prod}}
  - name: deploy
    allow:
      targets: {names: [web-1]}
      logins: [deploy]
      commands: ["systemctl restart *"]
  - name: payments
    allow:
      container_labels: {team: payments}
      logins: [root]
  - name: admins
    options: {permissions: [admin]}
bindings:
  - user: alice
    roles: [dba]
  - group: devs
    roles: [dev]
  - user: mallory
    roles: [dba, prod-lock]
  - user: ci
    roles: [deploy]
  - user: pat
    roles: [payments, admins]
`

func engine(t *testing.T) *Engine {
	t.Helper()
	c, err := parsePolicy(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	return New(c)
}

func TestCheck(t *testing.T) {
	e := engine(t)
	db := Target{Name: "db-1", Kind: "ssh", Labels: map[string]string{"role": "db", "env": "prod"}}
	web := Target{Name: "web-1", Kind: "ssh", Labels: map[string]string{"env": "dev"}}
	pay := Target{Name: "docker:pay-1", Kind: "docker", ContainerLabels: map[string]string{"team": "payments"}}
	other := Target{Name: "docker:blog", Kind: "docker", ContainerLabels: map[string]string{"team": "blog"}}
	tests := []struct {
		name       string
		req        Request
		allowed    bool
		wantReason string
	}{
		{"label match", Request{User: "alice", Target: db, Login: "postgres"}, true, "allowed by role dba"},
		{"login not allowed", Request{User: "alice", Target: db, Login: "admin"}, false, "no role of alice (dba) allows admin on db-1"},
		{"no roles", Request{User: "eve", Target: db, Login: "root"}, false, "user eve has no roles"},
		{"group binding", Request{User: "bob", Groups: []string{"devs"}, Target: web, Login: "app"}, true, "allowed by role dev"},
		{"deny login wins", Request{User: "bob", Groups: []string{"devs"}, Target: web, Login: "root"}, false, "role dev denies root on web-1"},
		{"deny target wins", Request{User: "mallory", Target: db, Login: "root"}, false, "role prod-lock denies root on db-1"},
		{"target not selected", Request{User: "alice", Target: web, Login: "root"}, false, "no role of alice (dba) allows root on web-1"},
		{"command allowed", Request{User: "ci", Target: web, Login: "deploy", Command: "systemctl restart app"}, true, "allowed by role deploy"},
		{"command refused", Request{User: "ci", Target: web, Login: "deploy", Command: "rm -rf /"}, false, `role deploy allows only listed commands on web-1; "rm -rf /" is not one of them`},
		{"command list escape", Request{User: "ci", Target: web, Login: "deploy", Command: "systemctl restart x; reboot"}, false, `command refused: ';' is shell syntax (command list) at byte 19; only plain arguments are allowed`},
		{"substitution escape", Request{User: "ci", Target: web, Login: "deploy", Command: "systemctl restart $(reboot)"}, false, `command refused: '$' is shell syntax (substitution or expansion) at byte 18; only plain arguments are allowed`},
		{"shell refused for command role", Request{User: "ci", Target: web, Login: "deploy"}, false, "role deploy allows only listed commands on web-1, not a shell or subsystem"},
		{"container label", Request{User: "pat", Target: pay, Login: "root"}, true, "allowed by role payments"},
		{"container label mismatch", Request{User: "pat", Target: other, Login: "root"}, false, "no role of pat (admins, payments) allows root on docker:blog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Check(tt.req)
			if d.Allowed != tt.allowed || d.Reason != tt.wantReason {
				t.Fatalf("Check = (%v, %q), want (%v, %q)", d.Allowed, d.Reason, tt.allowed, tt.wantReason)
			}
		})
	}
}

func TestOptionsAndLists(t *testing.T) {
	e := engine(t)
	db := Target{Name: "db-1", Labels: map[string]string{"role": "db"}}
	d := e.Check(Request{User: "alice", Target: db, Login: "root"})
	if !d.Options.SFTP || d.Options.PortForwarding || d.Options.MaxSessionTTL != 8*time.Hour {
		t.Fatalf("options %+v", d.Options)
	}
	if got := e.Logins("alice", nil, db); len(got) != 2 || got[0] != "postgres" || got[1] != "root" {
		t.Fatalf("Logins = %v", got)
	}
	if got := e.Logins("bob", []string{"devs"}, Target{Name: "web-2"}); len(got) != 1 || got[0] != "*" {
		t.Fatalf("Logins with deny = %v", got)
	}
	if ttl := e.CertTTL("alice", nil, 8*time.Hour, 24*time.Hour); ttl != 4*time.Hour {
		t.Fatalf("CertTTL = %s", ttl)
	}
	if ttl := e.CertTTL("bob", []string{"devs"}, 30*time.Hour, 24*time.Hour); ttl != 24*time.Hour {
		t.Fatalf("CertTTL cap = %s", ttl)
	}
	if p := e.Permissions("pat", nil); !p.Admin || p.Auditor {
		t.Fatalf("Permissions = %+v", p)
	}
	if p := e.Permissions("alice", nil); p.Admin {
		t.Fatal("alice must not be admin")
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("alice", "db-1", "root", "role", "db", "")
	f.Add("bob", "web-9", "root", "env", "prod", "ls")
	c, err := parsePolicy(testConfig)
	if err != nil {
		f.Fatal(err)
	}
	e := New(c)
	f.Fuzz(func(t *testing.T, user, name, login, lk, lv, cmd string) {
		d := e.Check(Request{User: user, Target: Target{Name: name, Labels: map[string]string{lk: lv}}, Login: login, Command: cmd})
		if d.Allowed && len(d.Roles) == 0 {
			t.Fatal("allowed without a role")
		}
		if d.Reason == "" {
			t.Fatal("decision without a reason")
		}
		// Nobody unbound is ever allowed (deny by default).
		if user != "alice" && user != "mallory" && user != "ci" && user != "pat" && d.Allowed {
			t.Fatalf("unbound user %q allowed", user)
		}
	})
}

// TestOnDecision: the hook is told of every decision Check makes, with the
// request and the answer, and stops when cleared.
func TestOnDecision(t *testing.T) {
	e := engine(t)
	var got []string
	e.OnDecision(func(r Request, d Decision) { got = append(got, fmt.Sprintf("%s %s %v", r.User, r.Login, d.Allowed)) })
	e.Check(Request{User: "alice", Target: Target{Name: "db-1", Labels: map[string]string{"role": "db"}}, Login: "postgres"})
	e.Check(Request{User: "nobody", Target: Target{Name: "db-1"}, Login: "root"})
	e.Logins("alice", nil, Target{Name: "db-1"}) // not a decision
	e.OnDecision(nil)
	e.Check(Request{User: "alice", Target: Target{Name: "db-1"}, Login: "root"})
	if want := []string{"alice postgres true", "nobody root false"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("observed %q, want %q", got, want)
	}
}
