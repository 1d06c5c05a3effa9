package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// TestDomainDoesNotImportConfig keeps the YAML out of the domain: policy
// and gateway take their own types, and this package translates the
// configuration into them.
func TestDomainDoesNotImportConfig(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	const cfgPkg = "github.com/gatehouse/gatehouse/internal/config"
	for _, pkg := range []string{"github.com/gatehouse/gatehouse/policy", "github.com/gatehouse/gatehouse/gateway"} {
		out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			from, imports, _ := strings.Cut(line, ": ")
			for _, imp := range strings.Fields(imports) {
				if imp == cfgPkg {
					t.Errorf("%s depends on %s (imported by %s): translate in internal/app instead", pkg, cfgPkg, from)
				}
			}
		}
	}
}

// testConfig is a gateway with one ssh target whose host key is %[2]s, and
// %[3]s bound to role ops on it.
const testConfig = `data_dir: %[1]s
ssh: {listen: "127.0.0.1:0"}
web: {listen: "127.0.0.1:0"}
targets:
  - name: db-1
    address: "127.0.0.1:22"
    host_key: "%[2]s"
roles:
  - name: ops
    allow: {targets: {names: [db-1]}, logins: [root]}
bindings:
  - user: %[3]s
    roles: [ops]
`

func hostKeyLine(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ssh.NewPublicKey(pub)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func writeConfig(t *testing.T, path, hostKey, user string) {
	t.Helper()
	body := strings.NewReplacer("%[1]s", filepath.Join(filepath.Dir(path), "data"), "%[2]s", hostKey, "%[3]s", user).Replace(testConfig)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

const badHostKey = "ssh-ed25519 AAAA-not-base64"

// TestMalformedHostKeyRefusedAtLoad: a host key that does not parse is
// refused when the configuration is loaded, in one line naming the target
// — never discovered (or skipped) at the first dial.
func TestMalformedHostKeyRefusedAtLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, path, badHostKey, "alice")
	_, err := config.Load(path)
	want := "config: " + path + ":7: targets[0].host_key: target \"db-1\": not a public key in authorized_keys form ("
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("config.Load = %v, want one line starting %q", err, want)
	}

	// A configuration that reaches the app without the loader's checks is
	// refused all the same, by the target registry's translation.
	writeConfig(t, path, hostKeyLine(t), "alice")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Targets[0].HostCA = badHostKey
	wantApp := "app: target \"db-1\": host_ca: not a public key in authorized_keys form ("
	if _, err := TargetsOf(cfg); err == nil || !strings.HasPrefix(err.Error(), wantApp) {
		t.Fatalf("TargetsOf = %v, want %q...", err, wantApp)
	}
	if a, err := Start(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.HasPrefix(err.Error(), wantApp) {
		if a != nil {
			a.Close(context.Background())
		}
		t.Fatalf("Start = %v, want %q...", err, wantApp)
	}
}

// TestReloadWithMalformedHostKeyKeepsPolicy: a reload whose file has a
// host key that does not parse changes nothing — the previous roles,
// bindings and targets stay — and the refusal is audited with the line
// naming the target.
func TestReloadWithMalformedHostKeyKeepsPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	good := hostKeyLine(t)
	writeConfig(t, path, good, "alice")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Close(ctx)
	}()
	req := func(user string) policy.Request {
		return policy.Request{User: user, Target: policy.Target{Name: "db-1", Kind: "ssh"}, Login: "root"}
	}
	if !a.Policy.Check(req("alice")).Allowed {
		t.Fatal("alice is not allowed before the reload")
	}

	// The new file moves the binding to bob and breaks the host key.
	writeConfig(t, path, badHostKey, "bob")
	err = a.Reload("test")
	if err == nil || !strings.Contains(err.Error(), `targets[0].host_key: target "db-1": not a public key`) {
		t.Fatalf("Reload = %v, want the host key refused naming db-1", err)
	}
	if !a.Policy.Check(req("alice")).Allowed || a.Policy.Check(req("bob")).Allowed {
		t.Fatal("a refused reload changed the policy")
	}
	evs, err := a.Audit.Query(context.Background(), audit.Filter{Type: audit.EventAdminChange})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		found = found || (strings.HasPrefix(ev.Reason, "policy reload (test) refused, the previous policy stays: ") &&
			strings.Contains(ev.Reason, `target "db-1"`))
	}
	if !found {
		t.Fatalf("no audit event for the refused reload in %d admin events", len(evs))
	}

	// A good file still applies.
	writeConfig(t, path, good, "bob")
	if err := a.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if a.Policy.Check(req("alice")).Allowed || !a.Policy.Check(req("bob")).Allowed {
		t.Fatal("the good reload did not apply")
	}
}
