package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseExpectations(t *testing.T) {
	in := "# comment\n\nalice db-1 root -> allow\nbob[devs,ops] web-1 app  echo a -> b  → deny\n"
	got, err := ParseExpectations(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Expectation{
		{Line: 3, Text: "alice db-1 root -> allow", Request: Request{User: "alice", Target: Target{Name: "db-1"}, Login: "root"}, Allow: true},
		{Line: 4, Text: "bob[devs,ops] web-1 app  echo a -> b  -> deny", Request: Request{User: "bob", Groups: []string{"devs", "ops"},
			Target: Target{Name: "web-1"}, Login: "app", Command: "echo a -> b"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for in, want := range map[string]string{
		"alice db-1 root":           `policy: line 1: want "USER TARGET LOGIN [COMMAND] -> allow|deny", got "alice db-1 root"`,
		"alice db-1 -> allow":       `policy: line 1: want USER TARGET LOGIN before the arrow, got "alice db-1"`,
		"alice[ db-1 root -> allow": `policy: line 1: bad user "alice[": want NAME or NAME[GROUP,...]`,
	} {
		if _, err := ParseExpectations(strings.NewReader(in)); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// FuzzParseExpectations: any file either fails with a line number or yields
// expectations with a user, a target and a login, in line order.
func FuzzParseExpectations(f *testing.F) {
	for _, s := range []string{"alice db-1 root -> allow\n", "a[b,c] t l cmd; x -> deny", "# x\n\n→", "a b c -> -> allow"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		exps, err := ParseExpectations(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "policy: line ") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		last := 0
		for _, e := range exps {
			r := e.Request
			if r.User == "" || r.Target.Name == "" || r.Login == "" || e.Line <= last {
				t.Fatalf("bad expectation %+v", e)
			}
			last = e.Line
		}
	})
}
