package gateway

import (
	"fmt"
	"testing"
)

// TestAdmitCaps: unauthenticated connections are capped per source (an IPv4
// address, or a whole IPv6 /64) and in total, and released slots are reused.
func TestAdmitCaps(t *testing.T) {
	s := &Server{cfg: Config{MaxUnauthPerIP: 2, MaxUnauth: 5}, unauth: map[string]int{}}
	steps := []struct {
		name, host string
		want       bool
	}{
		{"first from an IPv4 address", "192.0.2.1", true},
		{"second from it", "192.0.2.1", true},
		{"third from it is over the per-source cap", "192.0.2.1", false},
		{"another IPv4 address has its own", "192.0.2.2", true},
		{"an IPv6 address", "2001:db8::1", true},
		{"another address in the same /64 shares its cap", "2001:db8::ffff:1", true},
		{"a third in that /64 is refused", "2001:db8::2", false},
		{"a different /64 would be fine, but the total cap is reached", "2001:db8:0:1::1", false},
	}
	var releases []func()
	for _, st := range steps {
		release, ok := s.admit(st.host)
		if ok != st.want {
			t.Fatalf("%s: admit(%s) = %v, want %v", st.name, st.host, ok, st.want)
		}
		if ok {
			releases = append(releases, release)
		}
	}
	releases[0]()
	releases[0]() // releasing twice frees one slot only
	if _, ok := s.admit("2001:db8:0:1::1"); !ok {
		t.Fatal("a released slot was not reused")
	}
	if _, ok := s.admit("198.51.100.7"); ok {
		t.Fatal("a double release freed two slots")
	}
	if got := fmt.Sprint(unauthKey("2001:db8::ffff:1"), " ", unauthKey("192.0.2.1")); got != "2001:db8::/64 192.0.2.1" {
		t.Fatalf("keys %s", got)
	}
}
