package gateway

import (
	"errors"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
)

// TestIdentityIsNotReadFromPermissions: the identity of a connection is the
// one its own handshake accepted. Permissions that merely say who the user
// is — the strings an older gateway packed there, or the token another
// handshake issued — name nobody.
func TestIdentityIsNotReadFromPermissions(t *testing.T) {
	var a, b authState
	perms := a.issue(principal{Identity: auth.Identity{User: "alice", Groups: []string{"dba"}}, Via: "certificate"}, nil)
	pr, err := a.principal(perms)
	if err != nil || pr.User != "alice" || pr.Groups[0] != "dba" {
		t.Fatalf("own token: %v %v", pr, err)
	}
	for name, p := range map[string]*ssh.Permissions{
		"nil":                          nil,
		"identity as strings":          {Extensions: map[string]string{"gatehouse.user": "admin", "gatehouse.groups": "admins"}},
		"another handshake's token":    b.issue(principal{Identity: auth.Identity{User: "mallory"}}, nil),
		"a plain key not yet approved": {Extensions: map[string]string{permPlain: "SHA256:x"}},
	} {
		if pr, err := a.principal(p); err == nil || pr != nil {
			t.Errorf("%s: named %v", name, pr)
		}
	}
}

// TestAddressParsedOncePerName: the callbacks of one handshake share one
// parse of the SSH user name; a client that tries another name gets that
// one parsed, and a ProxyJump inner connection's name is the login at the
// jump's target.
func TestAddressParsedOncePerName(t *testing.T) {
	st := &authState{}
	a, err := st.address("root@db-1")
	if err != nil || a != (Address{Login: "root", Target: "db-1"}) {
		t.Fatalf("root@db-1: %v %v", a, err)
	}
	st.addr.Login = "cached" // what a second parse would not return
	if a, _ := st.address("root@db-1"); a.Login != "cached" {
		t.Fatal("the same name was parsed again")
	}
	if a, err := st.address("alice"); err != nil || a.Direct() {
		t.Fatalf("menu name: %v %v", a, err)
	}
	if _, err := st.address("a@b@c"); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("bad name: %v", err)
	}
	inner := &authState{inner: "db-1"}
	if a, err := inner.address("postgres"); err != nil || a != (Address{Login: "postgres", Target: "db-1"}) {
		t.Fatalf("inner: %v %v", a, err)
	}
}
