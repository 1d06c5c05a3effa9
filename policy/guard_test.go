package policy

import (
	"strings"
	"testing"
)

const guardConfig = `
roles:
  - name: admin
    allow: {targets: {names: ["*"]}, logins: [root]}
  - name: no-rm
    deny:
      commands: ["rm -rf", "shutdown", "/sbin/reboot"]
    warn:
      commands: ["systemctl restart *"]
  - name: prod-only
    deny:
      targets: {names: [db-1]}
      commands: ["dropdb"]
bindings:
  - user: ann
    roles: [admin, no-rm, prod-only]
  - user: free
    roles: [admin]
`

func TestDenyCommands(t *testing.T) {
	e := New(mustParse(t, guardConfig))
	db, web := Target{Name: "db-1"}, Target{Name: "web-1"}
	tests := []struct {
		name, cmd string
		target    Target
		reason    string // "" = allowed
	}{
		{"plain", "rm -rf /tmp/x", db, `role no-rm denies the command "rm -rf /tmp/x" (rule "rm -rf")`},
		{"after a semicolon", "true; rm -rf /tmp/x", db, `role no-rm denies the command "rm -rf /tmp/x" (rule "rm -rf")`},
		{"after &&", "ls && rm -rf /tmp/x", db, `role no-rm denies the command "rm -rf /tmp/x" (rule "rm -rf")`},
		{"after ||", "false || rm -rf /tmp/x", db, `role no-rm denies the command "rm -rf /tmp/x" (rule "rm -rf")`},
		{"after a pipe", "echo y | rm -rf /tmp/x", db, `role no-rm denies the command "rm -rf /tmp/x" (rule "rm -rf")`},
		{"in the background", "rm -rf /tmp/x & echo", db, `role no-rm denies the command "rm -rf /tmp/x" (rule "rm -rf")`},
		{"on a new line", "echo\nrm -rf /tmp/x", db, `role no-rm denies the command "rm -rf /tmp/x" (rule "rm -rf")`},
		{"inside $()", "echo $(rm -rf /tmp/x)", db, `role no-rm denies the command "rm -rf /tmp/x" (rule "rm -rf")`},
		{"inside backticks", "echo `rm -rf /tmp/x`", db, `role no-rm denies the command "rm -rf /tmp/x" (rule "rm -rf")`},
		{"computed program", "$(echo rm) -rf /tmp/x", db, `role no-rm denies commands it cannot see: "$(echo rm) -rf /tmp/x" computes its program name ($(...), backticks or a variable)`},
		{"computed by backticks", "`echo rm` -rf /tmp/x", db, "role no-rm denies commands it cannot see: \"`echo rm` -rf /tmp/x\" computes its program name ($(...), backticks or a variable)"},
		{"computed by a variable", "X=rm; $X -rf /tmp/x", db, `role no-rm denies commands it cannot see: "X=rm; $X -rf /tmp/x" computes its program name ($(...), backticks or a variable)`},
		{"quoted letters", `r'm' -"rf" /tmp/x`, db, `role no-rm denies the command "r'm' -\"rf\" /tmp/x" (rule "rm -rf")`},
		{"backslash", `\rm -rf /tmp/x`, db, `role no-rm denies the command "\\rm -rf /tmp/x" (rule "rm -rf")`},
		{"full path", "/bin/rm -rf /tmp/x", db, `role no-rm denies the command "/bin/rm -rf /tmp/x" (rule "rm -rf")`},
		{"sudo", "sudo -u root rm -rf /tmp/x", db, `role no-rm denies the command "sudo -u root rm -rf /tmp/x" (rule "rm -rf")`},
		{"env and assignment", "env -i A=1 rm -rf /tmp/x", db, `role no-rm denies the command "env -i A=1 rm -rf /tmp/x" (rule "rm -rf")`},
		{"sh -c", "sh -c 'echo; rm -rf /tmp/x'", db, `role no-rm denies the command "rm -rf /tmp/x'" (rule "rm -rf")`},
		{"pattern with a path", "reboot", db, `role no-rm denies the command "reboot" (rule "/sbin/reboot")`},
		{"prefix with more arguments", "shutdown -h now", db, `role no-rm denies the command "shutdown -h now" (rule "shutdown")`},
		{"scoped deny on its target", "dropdb app", db, `role prod-only denies the command "dropdb app" (rule "dropdb")`},
		{"scoped deny elsewhere", "dropdb app", web, ""},
		{"other rm", "rm /tmp/x", db, ""},
		{"assignment of a substitution", "x=$(date); echo $x", db, ""},
		{"echo mentioning rm", "echo rm -rf", db, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Check(Request{User: "ann", Target: tt.target, Login: "root", Command: tt.cmd})
			if (tt.reason == "") != d.Allowed || (tt.reason != "" && d.Reason != tt.reason) {
				t.Fatalf("Check(%q) = (%v, %q), want %q", tt.cmd, d.Allowed, d.Reason, tt.reason)
			}
		})
	}
	// The deny applies to exec requests only; shells and other users are untouched.
	if d := e.Check(Request{User: "ann", Target: db, Login: "root"}); !d.Allowed {
		t.Fatalf("shell refused by a command deny: %s", d.Reason)
	}
	if d := e.Check(Request{User: "free", Target: db, Login: "root", Command: "rm -rf /tmp/x"}); !d.Allowed {
		t.Fatalf("user without the deny role refused: %s", d.Reason)
	}
}

func TestWarnCommands(t *testing.T) {
	e := New(mustParse(t, guardConfig))
	d := e.Check(Request{User: "ann", Target: Target{Name: "web-1"}, Login: "root", Command: "systemctl restart nginx && echo done"})
	want := `role no-rm warns on the command "systemctl restart nginx" (rule "systemctl restart *")`
	if !d.Allowed || len(d.Warnings) != 1 || d.Warnings[0] != want {
		t.Fatalf("Check = %+v, want allowed with warning %q", d, want)
	}
	if d := e.Check(Request{User: "ann", Target: Target{Name: "web-1"}, Login: "root", Command: "systemctl status nginx"}); len(d.Warnings) != 0 {
		t.Fatalf("unexpected warning %q", d.Warnings)
	}
}

func TestCommandDenyDoesNotDenyTheTarget(t *testing.T) {
	// A deny with targets and commands denies those commands there, not every login.
	e := New(mustParse(t, guardConfig))
	if d := e.Check(Request{User: "ann", Target: Target{Name: "db-1"}, Login: "root", Command: "ls"}); !d.Allowed {
		t.Fatalf("ls on db-1: %s", d.Reason)
	}
	if got := e.Logins("ann", nil, Target{Name: "db-1"}); strings.Join(got, ",") != "root" {
		t.Fatalf("logins %q", got)
	}
}

// FuzzSplitCommandLine: for any line, the first part is the whole line, no
// part holds a separator outside the whole line, and a deny of "rm" catches
// "rm" placed after any separator in front of the line.
func FuzzSplitCommandLine(f *testing.F) {
	for _, s := range []string{"ls; rm -rf /", "a && b || c | d & e", "echo $(rm x) `rm y`", "$(echo rm) -rf /", "x=$(id) y", "sh -c 'a; b'", "((", "))", "``", "$("} {
		f.Add(s)
	}
	e := New(mustParse(f, guardConfig))
	f.Fuzz(func(t *testing.T, line string) {
		parts := SplitCommandLine(line)
		if len(parts) == 0 || (len(line) <= MaxCommandLen && parts[0].Text != strings.TrimSpace(line)) {
			t.Fatalf("first part %+v is not the whole line %q", parts, line)
		}
		for _, p := range parts[1:] {
			if strings.ContainsAny(p.Text, ";|&\n()`") || strings.Contains(p.Text, "$(") {
				t.Fatalf("part %q of %q holds a separator", p.Text, line)
			}
		}
		if len(line) > 1000 {
			return
		}
		for _, sep := range []string{"; ", " && ", " || ", " | ", " & ", "\n", " $(", " `"} {
			evil := line + sep + "rm -rf /tmp/x"
			if d := e.Check(Request{User: "ann", Target: Target{Name: "web-1"}, Login: "root", Command: evil}); d.Allowed {
				t.Fatalf("deny of rm -rf missed %q", evil)
			}
		}
	})
}
