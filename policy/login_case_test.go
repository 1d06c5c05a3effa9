package policy

import "testing"

// TestDenyLoginIgnoresCase: where ssh.login_pattern admits upper case, a
// deny on "root" still refuses "ROOT" and "Root" (the gateway's default
// pattern refuses them before policy runs; this is the second line).
func TestDenyLoginIgnoresCase(t *testing.T) {
	e := engine(t)
	web := Target{Name: "web-1", Kind: "ssh", Labels: map[string]string{"env": "dev"}}
	for _, login := range []string{"root", "ROOT", "Root", "rOOt"} {
		d := e.Check(Request{User: "bob", Groups: []string{"devs"}, Target: web, Login: login})
		if d.Allowed || d.Reason != "role dev denies "+login+" on web-1" {
			t.Errorf("login %q: Check = (%v, %q), want denied by role dev", login, d.Allowed, d.Reason)
		}
	}
	if d := e.Check(Request{User: "bob", Groups: []string{"devs"}, Target: web, Login: "app"}); !d.Allowed {
		t.Fatalf("control: app refused: %s", d.Reason)
	}
}
