package policy

import (
	"reflect"
	"strings"
	"testing"
	"unicode"
)

// FuzzTokenize checks, for any exec request: an accepted command holds no
// character a shell acts on even when quoted ($ ` \ !), no control
// character, and its canonical rendering parses back to the same arguments;
// a command with unquoted shell syntax is never accepted.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"ls /tmp", "ls /tmp; touch x", "echo 'a;b' \"c d\"", "ls $(id)", "ls `id`",
		"ls\nid", "ls && id", "ls | sh", "ls >x", "echo 'it''s'", `echo "a'b"`, "ls *", "ls '*'", "~", "#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		argv, err := Tokenize(in)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if len(argv) == 0 {
			t.Fatal("accepted an empty command")
		}
		for _, a := range argv {
			if strings.ContainsAny(a, "$`\\!") || strings.ContainsFunc(a, func(r rune) bool { return r != ' ' && r != '\t' && !unicode.IsPrint(r) }) {
				t.Fatalf("accepted argument %q of %q", a, in)
			}
		}
		if unquotedMeta(in) {
			t.Fatalf("accepted unquoted shell syntax in %q", in)
		}
		line := Render(argv)
		back, err := Tokenize(line)
		if err != nil || !reflect.DeepEqual(back, argv) {
			t.Fatalf("Render(%q) = %q parses to %q, %v", argv, line, back, err)
		}
	})
}

// unquotedMeta is an independent, simpler reading of the input: does a
// metacharacter or glob appear outside quotes?
func unquotedMeta(s string) bool {
	var q rune
	for _, r := range s {
		switch {
		case q != 0 && r == q:
			q = 0
		case q != 0:
		case r == '\'' || r == '"':
			q = r
		case strings.ContainsRune(";&|<>(){}\n\r*?[", r):
			return true
		}
	}
	return false
}

// FuzzCheckCommand checks the whole decision: whatever the request, an
// allowed command under a rule "echo *" has a force-command that parses to
// echo and its arguments, and a shell rule allows its line only.
func FuzzCheckCommand(f *testing.F) {
	for _, s := range []string{"echo hi", "echo hi; id", "echo $(id)", "journalctl -u app | tail -n 5", "ls", "", "ls /srv/*.txt -l", "ls /srv/../*.txt"} {
		f.Add(s)
	}
	e := New(mustParse(f, commandConfig))
	f.Fuzz(func(t *testing.T, cmd string) {
		d := e.Check(Request{User: "oscar", Target: Target{Name: "db-1"}, Login: "root", Command: cmd})
		if !d.Allowed {
			if d.Reason == "" || strings.ContainsAny(d.Reason, "\n\r") && !strings.Contains(d.Reason, `'\n'`) {
				t.Fatalf("refusal without a one-line reason: %q", d.Reason)
			}
			return
		}
		fc := d.ForceCommand()
		if fc == "journalctl -u app | tail -n 5" {
			if cmd != fc {
				t.Fatalf("shell rule allowed %q", cmd)
			}
			return
		}
		if strings.HasPrefix(d.Command.Rule, GlobRulePrefix) {
			ws, err := tokenize(fc)
			if err != nil || ws[0].text != "ls" || ws[1].text == "" {
				t.Fatalf("glob rule allowed %q as %q (%v)", cmd, fc, err)
			}
			for _, w := range ws {
				if w.glob && (!plainGlob(w.text) || !strings.HasPrefix(w.text, "/srv/")) {
					t.Fatalf("glob rule let %q through in %q", w.text, cmd)
				}
			}
			return
		}
		argv, err := Tokenize(fc)
		if err != nil || len(argv) == 0 || (argv[0] != "echo" && argv[0] != "systemctl") || !reflect.DeepEqual(argv, d.Command.Argv) {
			t.Fatalf("allowed %q with force-command %q (%q, %v)", cmd, fc, argv, err)
		}
	})
}
