package usererr

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var errSentinel = New("auth", "certificate has expired (run 'gatehouse login')")

func TestMessage(t *testing.T) {
	detail := errors.New("sql: database is closed")
	tests := []struct {
		name    string
		err     error
		want    string // "" means the generic line
		wantErr string // Error(), for the log
	}{
		{"sentinel", errSentinel, "certificate has expired (run 'gatehouse login')",
			"auth: certificate has expired (run 'gatehouse login')"},
		{"sentinel with logged detail", fmt.Errorf("%w [serial 7]", errSentinel), "certificate has expired (run 'gatehouse login')",
			"auth: certificate has expired (run 'gatehouse login') [serial 7]"},
		{"wrapped detail", Wrap(detail, "auth", "could not read your second factor"), "could not read your second factor",
			"auth: could not read your second factor: sql: database is closed"},
		{"no package", &Error{Msg: "your access is locked (x); contact an administrator"},
			"your access is locked (x); contact an administrator", "your access is locked (x); contact an administrator"},
		{"plain error", fmt.Errorf("auth: %w", detail), "", "auth: sql: database is closed"},
		{"empty message is not a message", &Error{Pkg: "auth", Err: detail}, "", "auth: : sql: database is closed"},
	}
	generic := regexp.MustCompile(`^internal error; the operator has the details \(ref ([0-9a-f]{8})\)$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, ref := Message(tc.err)
			if tc.want == "" {
				m := generic.FindStringSubmatch(msg)
				if m == nil || m[1] != ref {
					t.Fatalf("Message = %q, ref %q; want the generic line with that ref", msg, ref)
				}
				if strings.Contains(msg, "sql") || Visible(tc.err) {
					t.Fatalf("detail leaked or counted as visible: %q", msg)
				}
			} else if msg != tc.want || ref != "" {
				t.Fatalf("Message = %q, ref %q; want %q and no ref", msg, ref, tc.want)
			}
			if got := tc.err.Error(); got != tc.wantErr {
				t.Fatalf("Error() = %q, want %q", got, tc.wantErr)
			}
		})
	}
}

func TestSentinelsAndUnwrap(t *testing.T) {
	detail := errors.New("token endpoint said invalid_grant")
	w := fmt.Errorf("%w (%v)", errSentinel, detail)
	if !errors.Is(w, errSentinel) {
		t.Fatal("a wrapped sentinel is not found by errors.Is")
	}
	if other := New("auth", "certificate has expired (run 'gatehouse login')"); errors.Is(other, errSentinel) {
		t.Fatal("two sentinels with the same text compare equal")
	}
	if !errors.Is(Wrap(detail, "auth", "x"), detail) {
		t.Fatal("Wrap hides its detail from errors.Is")
	}
	if msg, ref := Message(nil); msg != "" || ref != "" {
		t.Fatalf("Message(nil) = %q, %q", msg, ref)
	}
	_, r1 := Message(detail)
	_, r2 := Message(detail)
	if r1 == r2 {
		t.Fatalf("two failures share the reference %s", r1)
	}
}
