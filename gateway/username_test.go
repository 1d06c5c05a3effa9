package gateway

import (
	"errors"
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
