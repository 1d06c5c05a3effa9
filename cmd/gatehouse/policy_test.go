package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const policyFixture = "testdata/policy/gatehouse.yaml"

func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String() + errb.String()
}

func TestPolicyExplainCommand(t *testing.T) {
	cfg, _ := filepath.Abs(policyFixture)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"allowed command", []string{"--user", "oscar", "--target", "web-1", "--login", "root", "--command", `systemctl  status "my unit"`}, 0,
			`ALLOW: allowed by role ops
roles of oscar: ops
command: "systemctl  status \"my unit\"" parsed as argv ["systemctl" "status" "my unit"]
matched: rule "systemctl status *" of role ops
force-command: systemctl status 'my unit'
options: sftp=false port_forwarding=false max_session_ttl=0s idle_timeout=0s session_mfa=false
`},
		{"escape refused", []string{"--user", "oscar", "--target", "web-1", "--login", "root", "--command", "systemctl status x; reboot"}, 1,
			`DENY: command refused: ';' is shell syntax (command list) at byte 18; only plain arguments are allowed
roles of oscar: ops
command: "systemctl status x; reboot" not parsed: command refused: ';' is shell syntax (command list) at byte 18; only plain arguments are allowed
rules of role ops: ["systemctl status *" "shell:journalctl -u app | tail -n 50"]
`},
		{"shell rule", []string{"--user", "oscar", "--target", "web-1", "--login", "root", "--command", "journalctl -u app | tail -n 50"}, 0,
			`ALLOW: allowed by role ops
roles of oscar: ops
command: "journalctl -u app | tail -n 50" not parsed: command refused: '|' is shell syntax (pipe) at byte 18; only plain arguments are allowed
matched: rule "shell:journalctl -u app | tail -n 50" of role ops
force-command: journalctl -u app | tail -n 50
options: sftp=false port_forwarding=false max_session_ttl=0s idle_timeout=0s session_mfa=false
`},
		{"unrestricted", []string{"--user", "alice", "--target", "db-1", "--login", "root", "--command", "ls; id"}, 0,
			`ALLOW: allowed by role dba
roles of alice: dba
command: "ls; id" not parsed: command refused: ';' is shell syntax (command list) at byte 2; only plain arguments are allowed
commands: not restricted (a role allowing this has no command rules); no force-command
options: sftp=true port_forwarding=false max_session_ttl=0s idle_timeout=0s session_mfa=false
`},
		{"deny command", []string{"--user", "gus", "--target", "db-1", "--login", "root", "--command", "cd /srv && rm -rf data"}, 1,
			`DENY: role guard denies the command "rm -rf data" (rule "rm -rf")
roles of gus: dba, guard
command: "cd /srv && rm -rf data" not parsed: command refused: '&' is shell syntax (background or command list) at byte 8; only plain arguments are allowed
`},
		{"warn command", []string{"--user", "gus", "--target", "db-1", "--login", "postgres", "--command", "psql -c 'select 1'"}, 0,
			`ALLOW: allowed by role dba
roles of gus: dba, guard
command: "psql -c 'select 1'" parsed as argv ["psql" "-c" "select 1"]
warn: role guard warns on the command "psql -c 'select 1'" (rule "psql *")
commands: not restricted (a role allowing this has no command rules); no force-command
options: sftp=true port_forwarding=false max_session_ttl=0s idle_timeout=0s session_mfa=false
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCLI(t, append([]string{"policy", "explain", "--config", cfg}, tt.args...)...)
			if code != tt.wantCode || out != tt.want {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d:\n%s", code, out, tt.wantCode, tt.want)
			}
		})
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/policy/NAME, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "policy", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (run with -update to accept):\n%s", path, got)
	}
}

func TestPolicyTestGolden(t *testing.T) {
	for _, tt := range []struct {
		file     string
		wantCode int
	}{{"expect-pass.txt", 0}, {"expect.txt", 1}} {
		t.Run(tt.file, func(t *testing.T) {
			code, out := runCLI(t, "policy", "test", filepath.Join("testdata", "policy", tt.file), "--config", policyFixture)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.wantCode, out)
			}
			golden(t, strings.TrimSuffix(tt.file, ".txt")+".golden", out)
		})
	}
}

func TestPolicyTestBadFile(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte("alice db-1 root -> allow\nalice db-1 -> maybe\n"), 0o644)
	code, out := runCLI(t, "policy", "test", "--config", policyFixture, bad)
	want := "gatehouse policy: " + bad + `: line 2: the expected decision is "maybe"; want allow or deny` + "\n"
	if code != 1 || out != want {
		t.Fatalf("exit %d, output %q, want %q", code, out, want)
	}
}

func TestPolicyAccessGolden(t *testing.T) {
	code, out := runCLI(t, "policy", "access", "--format", "csv", "--config", policyFixture)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	golden(t, "access.csv", out)
	if code, out := runCLI(t, "policy", "access", "--format", "xml", "--config", policyFixture); code != 2 || !strings.Contains(out, `unknown format "xml"`) {
		t.Fatalf("bad format: exit %d %q", code, out)
	}
}
