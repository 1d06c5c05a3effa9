package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfig(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "testdata", "gatehouse.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 2 || c.Targets[0].Kind != "ssh" || c.Targets[1].Kind != "docker" {
		t.Fatalf("targets: %+v", c.Targets)
	}
	if c.Roles[0].Options.IdleTimeout != 30*time.Minute || !c.Roles[0].Options.SFTP {
		t.Fatalf("role options: %+v", c.Roles[0].Options)
	}
	if c.Certs.UserTTL != 8*time.Hour || c.SSH.HandshakeTimeout != 30*time.Second {
		t.Fatalf("defaults not applied: %+v %+v", c.Certs, c.SSH)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // the one-line error, exactly
	}{
		{"unknown key", "data_dir: /x\nssh:\n  listn: \":22\"\n",
			"config: f.yaml:3: field listn is not a known key in SSH"},
		{"bad duration", "ssh:\n  handshake_timeout: soon\n",
			"config: f.yaml:2: cannot unmarshal !!str `soon` into time.Duration"},
		{"bad listen", "ssh:\n  listen: \"nope\"\n",
			"config: f.yaml:2: ssh.listen: \"nope\" is not host:port"},
		{"target without host key", "targets:\n  - name: db-1\n    address: \"10.0.0.1:22\"\n",
			"config: f.yaml:2: targets[0]: target \"db-1\" needs host_key or host_ca: unknown host keys are refused"},
		{"bad target name", "targets:\n  - name: \"db@1\"\n    address: \"10.0.0.1:22\"\n    host_key: x\n",
			"config: f.yaml:2: targets[0].name: \"db@1\": use lower-case letters, digits, '.', '_' and '-' (no '@' or ':')"},
		{"binding to unknown role", "roles:\n  - name: dba\nbindings:\n  - user: alice\n    roles: [dbx]\n",
			"config: f.yaml:5: bindings[0].roles: unknown role \"dbx\""},
		{"binding user and group", "bindings:\n  - user: a\n    group: b\n",
			"config: f.yaml:2: bindings[0]: set exactly one of user or group"},
		{"bad kind", "targets:\n  - name: x\n    kind: telnet\n",
			"config: f.yaml:3: targets[0].kind: \"telnet\": want ssh or docker"},
		{"empty", "", "config: f.yaml: file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n got: %s\nwant: %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatal("error is not one line")
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "file not found (pass --config FILE or set GATEHOUSE_CONFIG)") {
		t.Fatalf("error = %v", err)
	}
}

func TestPathFromEnv(t *testing.T) {
	t.Setenv("GATEHOUSE_CONFIG", "/etc/gh.yaml")
	if got := PathFromEnv(""); got != "/etc/gh.yaml" {
		t.Fatalf("got %q", got)
	}
	if got := PathFromEnv("x.yaml"); got != "x.yaml" {
		t.Fatalf("got %q", got)
	}
	os.Unsetenv("GATEHOUSE_CONFIG")
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "gatehouse.example.yaml")); err == nil {
		f.Add(string(b))
	}
	f.Add("ssh: {listen: \":1\"}\n")
	f.Add("targets: [{name: a, address: 'x:1', host_ca: 'y'}]")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse("fuzz.yaml", []byte(s))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		for _, tg := range c.Targets {
			if strings.ContainsAny(tg.Name, "@:") {
				t.Fatalf("accepted target name %q", tg.Name)
			}
		}
	})
}
