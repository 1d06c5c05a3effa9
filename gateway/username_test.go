package gateway

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		name, in string
		want     Address
		wantErr  bool
	}{
		{"direct", "root@db-1", Address{"root", "db-1"}, false},
		{"menu", "alice", Address{}, false},
		{"docker", "root@docker:web-1", Address{"root", "docker:web-1"}, false},
		{"docker id", "app@docker:3f2a9c", Address{"app", "docker:3f2a9c"}, false},
		{"machine account", "host$@db-1", Address{"host$", "db-1"}, false},
		{"two ats", "root@db-1@gw", Address{}, true},
		{"empty login", "@db-1", Address{}, true},
		{"empty target", "root@", Address{}, true},
		{"upper target", "root@DB-1", Address{}, true},
		{"shell chars", "root;id@db-1", Address{}, true},
		{"empty docker", "root@docker:", Address{}, true},
		{"empty", "", Address{}, true},
		{"overlong menu", strings.Repeat("a", 300), Address{}, true},
		{"login starts with dash", "-oProxyCommand@db-1", Address{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseAddress(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadAddress) {
				t.Fatalf("error %v does not wrap ErrBadAddress", err)
			}
			if got != tt.want {
				t.Fatalf("ParseAddress(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"root@db-1", "alice", "root@docker:web-1", "a@b@c", "@", "x@docker:", "ü@db"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if a.Direct() {
			// A parsed address must round-trip and carry no separators.
			if a.Login+"@"+a.Target != s {
				t.Fatalf("round trip: %q -> %+v", s, a)
			}
			if strings.ContainsAny(a.Login, "@:/ \t\n") {
				t.Fatalf("login %q has separators", a.Login)
			}
		}
	})
}

func TestCheckUserNameLoginPattern(t *testing.T) {
	s := &Server{}
	custom := &Server{cfg: Config{LoginPattern: regexp.MustCompile(`^[a-z]+(-adm)?$`)}}
	tests := []struct {
		name    string
		s       *Server
		user    string
		inner   bool
		wantErr string // exact; "" means accepted
	}{
		{"lower", s, "root@db-1", false, ""},
		{"menu", s, "alice", false, ""},
		{"upper", s, "ROOT@db-1", false, `login not allowed: "ROOT": logins must match ^[a-z_][a-z0-9_.-]*$ (did you mean "root"?)`},
		{"mixed", s, "Root@db-1", false, `login not allowed: "Root": logins must match ^[a-z_][a-z0-9_.-]*$ (did you mean "root"?)`},
		{"gateway part", s, "ROOT@db-1@gw", false, `bad address: "ROOT@db-1@gw" has more than one '@'; use login@target`},
		{"inner upper", s, "ROOT", true, `login not allowed: "ROOT": logins must match ^[a-z_][a-z0-9_.-]*$ (did you mean "root"?)`},
		{"inner lower", s, "postgres", true, ""},
		{"machine account", s, "host$@db-1", false, `login not allowed: "host$": logins must match ^[a-z_][a-z0-9_.-]*$`},
		{"custom ok", custom, "alice-adm@db-1", false, ""},
		{"custom refused", custom, "alice_x@db-1", false, `login not allowed: "alice_x": logins must match ^[a-z]+(-adm)?$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.checkUserName(tt.user, tt.inner)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Fatalf("checkUserName(%q) = %q, want %q", tt.user, got, tt.wantErr)
			}
		})
	}
}

// FuzzCheckUserName: whatever the default pattern lets through names a
// lower-case login without separators, so no case or syntax trick reaches
// policy or a target.
func FuzzCheckUserName(f *testing.F) {
	for _, s := range []string{"root@db-1", "ROOT@db-1", "Root@db-1@gw", "alice", "host$@db-1", "root", "_x.y-z@docker:web-1"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	s := &Server{}
	f.Fuzz(func(t *testing.T, user string, inner bool) {
		if s.checkUserName(user, inner) != nil {
			return
		}
		login := user
		if !inner {
			a, err := ParseAddress(user)
			if err != nil {
				t.Fatalf("accepted %q that ParseAddress refuses: %v", user, err)
			}
			login = a.Login
		}
		if login != strings.ToLower(login) || strings.ContainsAny(login, "@:/ \t\n$;") {
			t.Fatalf("accepted login %q from %q", login, user)
		}
	})
}
