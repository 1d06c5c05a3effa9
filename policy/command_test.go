package policy

import (
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{"plain", "systemctl status nginx", []string{"systemctl", "status", "nginx"}, ""},
		{"blanks", "  ls \t -l  /tmp ", []string{"ls", "-l", "/tmp"}, ""},
		{"single quotes", "echo 'a; b | c'", []string{"echo", "a; b | c"}, ""},
		{"double quotes", `echo "it's" x"y z"`, []string{"echo", "it's", "xy z"}, ""},
		{"empty argument", "echo '' x", []string{"echo", "", "x"}, ""},
		{"quoted glob is literal", "ls '*'", []string{"ls", "*"}, ""},
		{"utf-8", "echo grüße", []string{"echo", "grüße"}, ""},
		{"semicolon", "ls /tmp; touch x", nil, `';' is shell syntax (command list) at byte 7`},
		{"and", "ls && touch x", nil, `'&' is shell syntax (background or command list) at byte 3`},
		{"or", "ls || touch x", nil, `'|' is shell syntax (pipe) at byte 3`},
		{"pipe", "ls | sh", nil, `'|' is shell syntax (pipe) at byte 3`},
		{"background", "ls & touch x", nil, `'&' is shell syntax`},
		{"redirect out", "ls >/tmp/x", nil, `'>' is shell syntax (redirection) at byte 3`},
		{"redirect in", "ls </etc/shadow", nil, `'<' is shell syntax (redirection)`},
		{"substitution", "ls $(touch x)", nil, `'$' is shell syntax (substitution or expansion) at byte 3`},
		{"substitution in double quotes", `ls "$(touch x)"`, nil, `'$' is shell syntax (substitution or expansion) at byte 4`},
		{"variable in single quotes", `ls '$HOME'`, nil, `'$' is shell syntax`},
		{"backticks", "ls `touch x`", nil, "'`' is shell syntax (command substitution) at byte 3"},
		{"newline", "ls\ntouch x", nil, `'\n' is shell syntax (newline (second command)) at byte 2`},
		{"newline in quotes", "ls '\ntouch x'", nil, `unprintable character '\n' at byte 4`},
		{"subshell", "(touch x)", nil, `'(' is shell syntax (subshell)`},
		{"brace", "ls {a,b}", nil, `'{' is shell syntax`},
		{"backslash", `ls \;`, nil, `'\\' is shell syntax (escape)`},
		{"history", "ls !x", nil, `'!' is shell syntax`},
		{"comment", "ls #x", nil, `'#' at the start of an argument is shell syntax (comment) at byte 3`},
		{"tilde", "ls ~root", nil, `'~' at the start of an argument is shell syntax (home directory expansion)`},
		{"glob", "ls /tmp/*.log", nil, `argument "/tmp/*.log" is a glob the target's shell would expand (quote it to mean it literally) at byte 8`},
		{"unclosed", "echo 'abc", nil, `unclosed ' quote at byte 5`},
		{"empty", "   ", nil, "empty command at byte 0"},
		{"both quotes", `echo 'a"'"'"`, nil, "an argument with both kinds of quote"},
		{"control", "ls \x1b[2J", nil, `unprintable character '\x1b' at byte 3`},
		{"bad utf-8", "ls \xff", nil, "not valid UTF-8 at byte 3"},
		{"too long", "echo " + strings.Repeat("a", MaxCommandLen), nil, "longer than 8192 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Tokenize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrCommandSyntax) {
					t.Fatalf("Tokenize(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Tokenize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestRenderRoundTripsThroughSh(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal("sh is required:", err)
	}
	for _, argv := range [][]string{
		{"echo", "plain", "a b", "", "it's", `say "hi"`, "*", "a;b|c&d", "<x>", "grüße", "-n", "--", "x=y"},
	} {
		line := Render(argv)
		back, err := Tokenize(line)
		if err != nil || !reflect.DeepEqual(back, argv) {
			t.Fatalf("Tokenize(Render(%q)) = %q, %v", argv, back, err)
		}
		// The real shell splits the rendering into the same arguments.
		got, err := exec.Command(sh, "-c", "printf '[%s]' "+line[len("echo "):]).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		for _, a := range argv[1:] {
			want += "[" + a + "]"
		}
		if string(got) != want {
			t.Fatalf("sh split %q into %s, want %s", line, got, want)
		}
	}
}

func TestCommandRules(t *testing.T) {
	tests := []struct {
		rule string
		argv []string
		want bool
	}{
		{"systemctl status *", []string{"systemctl", "status"}, true},
		{"systemctl status *", []string{"systemctl", "status", "nginx", "-l"}, true},
		{"systemctl status *", []string{"systemctl", "restart", "nginx"}, false},
		{"systemctl status *", []string{"systemctl"}, false},
		{"systemctl status", []string{"systemctl", "status", "x"}, false},
		{"systemctl restart nginx-*", []string{"systemctl", "restart", "nginx-a"}, true},
		{"systemctl restart nginx-*", []string{"systemctl", "restart", "apache"}, false},
		{"systemctl restart nginx-*", []string{"systemctl", "restart", "nginx-a", "x"}, false},
		{"tail -n 100 * x", []string{"tail", "-n", "100", "anything", "x"}, true},
		{"tail -n 100 * x", []string{"tail", "-n", "100", "x"}, false},
		{"cat * -n", []string{"cat", "/var/log/syslog", "-n"}, true},
		{"cat /var/log/*.log", []string{"cat", "/var/log/app.log"}, true},
		{"cat /var/log/*.log", []string{"cat", "/var/log/../../etc/x.log"}, false},
		{"echo 'a b'", []string{"echo", "a b"}, true},
		{"echo 'a b'", []string{"echo", "a", "b"}, false},
		{"shell:ls | wc -l", []string{"ls", "|", "wc", "-l"}, false},
	}
	for _, tt := range tests {
		r, err := ParseCommandRule(tt.rule)
		if err != nil {
			t.Fatalf("ParseCommandRule(%q): %v", tt.rule, err)
		}
		if got := r.Match(tt.argv); got != tt.want {
			t.Errorf("rule %q Match(%q) = %v, want %v", tt.rule, tt.argv, got, tt.want)
		}
	}
	sh, _ := ParseCommandRule("shell: ls /tmp | wc -l")
	if !sh.MatchLine("ls /tmp | wc -l") || sh.MatchLine("ls /tmp | wc -l; reboot") || sh.MatchLine("ls /tmp  | wc -l") {
		t.Fatal("a shell rule matches its exact line only")
	}
}

func TestBadCommandRules(t *testing.T) {
	for rule, want := range map[string]string{
		"* status":         `policy: command rule "* status": the program name must be literal`,
		"ls /tmp; touch x": `policy: command rule "ls /tmp; touch x": ';' is shell syntax (command list) (use "shell:ls /tmp; touch x" for one exact shell command line)`,
		"shell:  ":         `policy: command rule "shell:  ": empty shell command`,
		"ls [":             `policy: command rule "ls [": bad pattern "["`,
	} {
		if _, err := ParseCommandRule(rule); err == nil || err.Error() != want {
			t.Errorf("ParseCommandRule(%q) = %v, want %q", rule, err, want)
		}
	}
	c, err := parsePolicy(`
roles:
  - name: r
    allow: {targets: {names: [x]}, logins: [u], commands: ["ls; x", "ls *"]}
bindings: [{user: u, roles: [r]}]
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(c); err == nil || !strings.Contains(err.Error(), `roles r: allow.commands: policy: command rule "ls; x"`) {
		t.Fatalf("Validate = %v", err)
	}
	// The good rule still works; the bad one matches nothing.
	d := New(c).Check(Request{User: "u", Target: Target{Name: "x"}, Login: "u", Command: "ls -l"})
	if !d.Allowed || d.ForceCommand() != "ls -l" {
		t.Fatalf("good rule beside a bad one: %+v", d)
	}
}

const commandConfig = `
roles:
  - name: ops
    allow:
      targets: {names: [db-1]}
      logins: [root]
      commands: ["systemctl status *", "shell:journalctl -u app | tail -n 5", "echo *", "glob:ls /srv/*.txt *"]
  - name: dba
    allow:
      targets: {names: [db-1]}
      logins: [postgres]
bindings:
  - user: oscar
    roles: [ops]
  - user: both
    roles: [ops, dba]
`

func TestCheckCommands(t *testing.T) {
	c, err := parsePolicy(commandConfig)
	if err != nil {
		t.Fatal(err)
	}
	e := New(c)
	db := Target{Name: "db-1"}
	tests := []struct {
		name, user, login, cmd string
		allowed                bool
		force, reason          string
	}{
		{"argv rule", "oscar", "root", "systemctl status 'my unit'", true, "systemctl status 'my unit'", "allowed by role ops"},
		{"canonical rendering", "oscar", "root", `  systemctl   status  "nginx"`, true, "systemctl status nginx", "allowed by role ops"},
		{"quoted metacharacters stay literal", "oscar", "root", "echo 'a;b'", true, "echo 'a;b'", "allowed by role ops"},
		{"shell rule exact", "oscar", "root", "journalctl -u app | tail -n 5", true, "journalctl -u app | tail -n 5", "allowed by role ops"},
		{"shell rule extended", "oscar", "root", "journalctl -u app | tail -n 5; reboot", false, "", `command refused: '|' is shell syntax (pipe) at byte 18; only plain arguments are allowed`},
		{"escape", "oscar", "root", "systemctl status x && reboot", false, "", `command refused: '&' is shell syntax (background or command list) at byte 19; only plain arguments are allowed`},
		{"not listed", "oscar", "root", "reboot", false, "", `role ops allows only listed commands on db-1; "reboot" is not one of them`},
		{"shell", "oscar", "root", "", false, "", "role ops allows only listed commands on db-1, not a shell or subsystem"},
		{"unrestricted role for another login", "both", "postgres", "anything; at all", true, "", "allowed by role dba"},
		{"restricted role for its login", "both", "root", "echo hi", true, "echo hi", "allowed by role ops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Check(Request{User: tt.user, Target: db, Login: tt.login, Command: tt.cmd})
			if d.Allowed != tt.allowed || d.ForceCommand() != tt.force || d.Reason != tt.reason {
				t.Fatalf("Check = (%v, force %q, %q), want (%v, %q, %q)", d.Allowed, d.ForceCommand(), d.Reason, tt.allowed, tt.force, tt.reason)
			}
		})
	}
}

func TestSessionMFAForCommandRoles(t *testing.T) {
	c, err := parsePolicy(`
roles:
  - name: ops
    allow: {targets: {names: [db-1]}, logins: [root], commands: ["echo *"]}
    options: {require_session_mfa: true}
bindings: [{user: oscar, roles: [ops]}]
`)
	if err != nil {
		t.Fatal(err)
	}
	if !New(c).RequireSessionMFA("oscar", nil, Target{Name: "db-1"}, "root") {
		t.Fatal("a role limited to commands must still ask for its session MFA")
	}
}

func TestGlobRules(t *testing.T) {
	e := New(mustParse(t, `
roles:
  - name: logs
    allow:
      targets: {names: [db-1]}
      logins: [root]
      commands: ["glob:ls -l /var/log/*.log", "glob:cat * /var/log/app/*", "tail -n 10 /var/log/*.log"]
bindings: [{user: u, roles: [logs]}]
`))
	tests := []struct{ cmd, force, reason string }{
		{"ls -l /var/log/app*.log", "ls -l /var/log/app*.log", ""},
		{"ls -l /var/log/*.log", "ls -l /var/log/*.log", ""},
		{"ls -l '/var/log/a b.log'", "ls -l '/var/log/a b.log'", ""},
		{"ls -l /var/log/*", "", "argument \"/var/log/*\" is a glob"},
		{"ls -l /var/log/../*.log", "", "is a glob"},
		{"ls -l /var/log/.*.log", "", "is a glob"},
		{"ls -l /var/log/x/*.log", "", "is a glob"},
		{"ls -l /var/log/*.log /etc/*", "", "is a glob"},
		{"cat /etc/* /var/log/app/x", "", "is a glob"},
		{"tail -n 10 /var/log/*.log", "", "is a glob"},
		{"ls -l /var/log/*.log; id", "", "';' is shell syntax"},
	}
	for _, tt := range tests {
		d := e.Check(Request{User: "u", Target: Target{Name: "db-1"}, Login: "root", Command: tt.cmd})
		if tt.reason == "" && (!d.Allowed || d.ForceCommand() != tt.force) {
			t.Errorf("%q: (%v, %q, %q), want force-command %q", tt.cmd, d.Allowed, d.ForceCommand(), d.Reason, tt.force)
		}
		if tt.reason != "" && (d.Allowed || !strings.Contains(d.Reason, tt.reason)) {
			t.Errorf("%q: (%v, %q), want a refusal containing %q", tt.cmd, d.Allowed, d.Reason, tt.reason)
		}
	}
}
