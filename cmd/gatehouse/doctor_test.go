package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestDoctorAgainstRealSSHD runs doctor against a real sshd set up as
// docs/targets.md says and one set up the ways that break Gatehouse's
// guarantees, and compares the exact finding lines.
func TestDoctorAgainstRealSSHD(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	keyFile := filepath.Join(dir, "master.key")
	os.WriteFile(keyFile, []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"), 0o600)
	base := fmt.Sprintf("data_dir: %s\nmaster_key_file: %s\nmetrics: {listen: \"127.0.0.1:9464\"}\noidc: {issuer: \"https://idp.example.com\", client_id: gh}\n", data, keyFile)
	cfg0, err := config.Parse("bootstrap.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	env, err := app.OpenEnv(cfg0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.LoadAuthority(context.Background(), env.Secrets, env.DB.DB)
	if err != nil {
		t.Fatal(err)
	}
	sessionCA, userCA := a.SessionCAPublicKey(), a.UserCAPublicKey()
	env.Close()

	// Good: trusts the session CA only, principals restricted, no passwords.
	principals := filepath.Join(dir, "principals")
	os.MkdirAll(principals, 0o755)
	os.WriteFile(filepath.Join(principals, "root"), []byte("root\n"), 0o644)
	good := testenv.StartSSHD(t, testenv.SSHDOptions{SessionCA: sessionCA,
		ExtraConfig: "AuthorizedPrincipalsFile " + principals + "/%u\n"})
	// Bad: trusts the user CA too, offers passwords, keeps authorized_keys.
	both := filepath.Join(dir, "both-cas.pub")
	os.WriteFile(both, append(ssh.MarshalAuthorizedKey(sessionCA), ssh.MarshalAuthorizedKey(userCA)...), 0o644)
	bad := testenv.StartSSHD(t, testenv.SSHDOptions{ExtraConfig: "Match all\n  TrustedUserCAKeys " + both +
		"\n  PasswordAuthentication yes\n  AuthorizedKeysFile .ssh/authorized_keys\n"})
	// Untrusting: does not trust the session CA at all.
	untrusting := testenv.StartSSHD(t, testenv.SSHDOptions{})

	path := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(path, []byte(base+fmt.Sprintf(`targets:
  - {name: good-1, address: "%s", host_key: "%s"}
  - {name: bad-1, address: "%s", host_key: "%s"}
  - {name: wrongkey-1, address: "%s", host_key: "%s"}
  - {name: untrusting-1, address: "%s", host_key: "%s"}
`, good.Addr, good.HostKeyLine, bad.Addr, bad.HostKeyLine, good.Addr, bad.HostKeyLine, untrusting.Addr, untrusting.HostKeyLine)), 0o600)

	doctor := func(target string) (int, string) {
		var out, errb bytes.Buffer
		code := run([]string{"doctor", "--config", path, "--target", target}, &out, &errb)
		return code, out.String() + errb.String()
	}
	fp := func(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }
	tests := []struct {
		target   string
		wantCode int
		want     []string // exact lines, in order, after the config lines
	}{
		{"good-1", 0, []string{
			"OK   target good-1: presents the pinned host key " + fp(good.HostKey),
			"OK   target good-1: refuses passwords (no password or keyboard-interactive authentication offered)",
			`OK   target good-1: accepts per-session certificates from the session CA for login "root"`,
			"OK   target good-1: refuses certificates from the user CA (what people hold)",
			"OK   target good-1: restricts certificate principals (AuthorizedPrincipalsFile " + principals + "/%u)",
			"OK   target good-1: no static authorized keys (AuthorizedKeysFile none)",
		}},
		{"bad-1", 1, []string{
			"OK   target bad-1: presents the pinned host key " + fp(bad.HostKey),
			`FAIL target bad-1: sshd accepts password authentication: a guessed or phished password opens the target without the gateway — fix: set "PasswordAuthentication no" in sshd_config and reload sshd`,
			`OK   target bad-1: accepts per-session certificates from the session CA for login "root"`,
			"FAIL target bad-1: TRUSTS THE USER CA: a person's Gatehouse certificate logs in directly, unrecorded — fix: TrustedUserCAKeys must list only the session CA (gatehouse ca public --target); remove the user CA line and reload sshd",
			`WARN target bad-1: no AuthorizedPrincipalsFile: the session CA may grant any account that exists on the target — fix: set "AuthorizedPrincipalsFile /etc/ssh/auth_principals/%u" and list, per account, the logins Gatehouse may use (one per line, e.g. root in /etc/ssh/auth_principals/root)`,
			`WARN target bad-1: AuthorizedKeysFile .ssh/authorized_keys: static keys on the target still open it without the gateway — fix: set "AuthorizedKeysFile none" once every user goes through Gatehouse`,
			"2 problem(s) found",
		}},
		{"wrongkey-1", 1, []string{
			"FAIL target wrongkey-1: presents host key " + fp(good.HostKey) + ", which is not the pinned host_key nor certified by host_ca; not probing further — fix: compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the target (out of band: a different key may be an attacker) and set targets[].host_key",
			"1 problem(s) found",
		}},
		{"untrusting-1", 1, []string{
			"OK   target untrusting-1: presents the pinned host key " + fp(untrusting.HostKey),
			"OK   target untrusting-1: refuses passwords (no password or keyboard-interactive authentication offered)",
			`FAIL target untrusting-1: refuses a per-session certificate for login "root" (sshd refused it) — fix: put "` +
				strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sessionCA))) + `" in the file named by TrustedUserCAKeys (gatehouse ca public --target), make sure the account root exists and, with AuthorizedPrincipalsFile, that its file lists root`,
			"OK   target untrusting-1: refuses certificates from the user CA (what people hold)",
			"1 problem(s) found",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			code, out := doctor(tt.target)
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			var got []string
			for _, l := range lines {
				if !strings.Contains(l, " config: ") {
					got = append(got, l)
				}
			}
			if code != tt.wantCode || strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("doctor --target %s: exit %d (want %d)\n got:\n%s\nwant:\n%s", tt.target, code, tt.wantCode,
					strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDoctorConfigFindings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(path, []byte("data_dir: "+filepath.Join(dir, "data")+"\nweb: {listen: \"0.0.0.0:8080\", insecure_http: true}\n"), 0o600)
	var out, errb bytes.Buffer
	code := run([]string{"doctor", "--config", path}, &out, &errb)
	want := "OK   config: " + path + " parses and validates\n" +
		"WARN config: the master key is a file in data_dir, next to the database it protects — fix: move it out (master_key_file: /etc/gatehouse/master.key or a systemd credential) or set GATEHOUSE_MASTER_KEY; see docs/deploy.md\n" +
		"WARN config: metrics.listen is not set: no /metrics, /readyz or container HEALTHCHECK — fix: set metrics: {listen: \"127.0.0.1:9464\"}\n" +
		"FAIL config: web.insecure_http serves plain HTTP on 0.0.0.0:8080, not loopback — fix: bind web.listen to 127.0.0.1 behind a TLS proxy, or remove insecure_http\n" +
		"WARN config: no oidc.issuer: users can only use admin-issued certificates — fix: configure oidc (docs/identity.md)\n" +
		"1 problem(s) found\n"
	if code != 1 || out.String() != want {
		t.Fatalf("exit %d\n got:\n%s\nwant:\n%s%s", code, out.String(), want, errb.String())
	}
}
