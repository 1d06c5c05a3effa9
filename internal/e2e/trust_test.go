package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// directToTarget runs ssh straight at the target's sshd (not through the
// gateway) with the user's key and Gatehouse certificate, as an attacker
// holding them would.
func (u *user) directToTarget(login string, args ...string) result {
	u.w.t.Helper()
	kh := filepath.Join(u.w.dir, "target_known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", u.w.sshd.Port, u.w.sshd.HostKeyLine)
	if err := os.WriteFile(kh, []byte(line), 0o644); err != nil {
		u.w.t.Fatal(err)
	}
	ssh := []string{"-F", "none", "-i", u.key, "-o", "CertificateFile=" + u.key + "-cert.pub",
		"-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + kh, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey", "-o", "ConnectTimeout=10",
		"-p", fmt.Sprint(u.w.sshd.Port), login + "@127.0.0.1"}
	return u.run("ssh", append(ssh, args...)...)
}

// TestUserCertificateRefusedByTarget is the attacker test of the user-CA /
// session-CA split: a target set up as docs/targets.md says trusts only the
// session CA, so the certificate a person holds (principal = their Gatehouse
// user name, hours long) opens nothing on it directly — not even for a
// Gatehouse user named like a system account — while the same person reaches
// the target through the gateway.
func TestUserCertificateRefusedByTarget(t *testing.T) {
	w := newWorld(t, "")
	// The target's TrustedUserCAKeys is exactly what `ca public --target`
	// prints, and not the user CA.
	trusted, err := os.ReadFile(filepath.Join(w.sshd.Dir, "gatehouse_session_ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	bin := gatehouseBinary(t)
	targetLine := w.cli(t, bin, "ca", "public", "--target")
	if f := strings.Fields(targetLine); len(f) < 2 || !strings.Contains(string(trusted), f[1]) {
		t.Fatalf("target trusts %q; `ca public --target` prints %q", trusted, targetLine)
	}
	userLine := w.cli(t, bin, "ca", "public", "--user")
	if f := strings.Fields(userLine); len(f) < 2 || strings.Contains(string(trusted), f[1]) {
		t.Fatalf("the target trusts the user CA: %q", userLine)
	}

	alice := w.newUser("alice", time.Hour)
	root := w.newUser("root", time.Hour) // a Gatehouse user named like a system account
	for _, tc := range []struct {
		name  string
		u     *user
		login string
	}{
		{"alice as root", alice, "root"},
		{"alice as alice", alice, "alice"},
		{"user named root as root", root, "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.u.directToTarget(tc.login, "echo pwned")
			if r.code != 255 || !strings.Contains(r.stderr, "Permission denied") || strings.Contains(r.stdout, "pwned") {
				t.Fatalf("direct login with a user certificate was not refused: %s", r)
			}
		})
	}
	if r := alice.direct("root", "db-1", "echo via-gateway"); r.code != 0 || r.stdout != "via-gateway\n" {
		t.Fatalf("alice through the gateway: %s", r)
	}
	// The target's own log: the one accepted login is a per-session
	// certificate (KeyId names the session); no user certificate got in.
	accepted := regexp.MustCompile(`Accepted publickey for \S+ .* ID (gatehouse:\S+)( session:\S+)?`)
	var n int
	for _, m := range accepted.FindAllStringSubmatch(w.sshd.Log(), -1) {
		if m[2] == "" {
			t.Fatalf("the target accepted a certificate that is not per-session: %s", m[0])
		}
		n++
	}
	if n != 1 {
		t.Fatalf("target accepted %d logins, want the 1 through the gateway; log:\n%s", n, w.sshd.Log())
	}
}

// TestSessionCertificateRefusedByGateway: a per-session certificate (session
// CA) presented to the gateway by a client is not a person's credential.
func TestSessionCertificateRefusedByGateway(t *testing.T) {
	w := newWorld(t, "")
	sc, err := w.app.Authority.MintSessionCert(context.Background(), auth.SessionCertRequest{
		User: "alice", SessionID: "stolen", Login: "alice", SourceAddress: "127.0.0.1", TTL: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var banner string
	cfg := &ssh.ClientConfig{User: "root@db-1", Auth: []ssh.AuthMethod{ssh.PublicKeys(sc.Signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the gateway's identity is not what this test checks
		BannerCallback:  func(m string) error { banner += m; return nil },
		Timeout:         10 * time.Second}
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", w.port), cfg)
	if err == nil {
		c.Close()
		t.Fatal("the gateway accepted a session-CA certificate from a client")
	}
	if !strings.Contains(err.Error(), "unable to authenticate") ||
		banner != "gatehouse: certificate is not signed by this gateway's user CA\n" {
		t.Fatalf("want an authentication refusal with the foreign-CA banner, got %v, banner %q", err, banner)
	}
}

// TestLoginCaseCannotPassDeny: a role allows any login on db-1 but denies
// root. "ROOT" and "Root" are refused before policy with a line saying why
// (directly and as the ProxyJump inner login), audited, and the target never
// sees them; "root" is denied by policy.
func TestLoginCaseCannotPassDeny(t *testing.T) {
	w := newWorldRoles(t, `roles:
  - name: ops
    allow:
      targets: {names: [db-1]}
      logins: ["*"]
    deny:
      logins: [root]
bindings:
  - user: alice
    roles: [ops]
`)
	alice := w.newUser("alice", time.Hour)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ROOT direct", []string{"-p", w.port, "ROOT@db-1@127.0.0.1", "id"},
			`gatehouse: login not allowed: "ROOT": logins must match ^[a-z_][a-z0-9_.-]*$ (did you mean "root"?)`},
		{"Root direct", []string{"-p", w.port, "Root@db-1@127.0.0.1", "id"},
			`gatehouse: login not allowed: "Root": logins must match ^[a-z_][a-z0-9_.-]*$ (did you mean "root"?)`},
		{"ROOT proxyjump", []string{"-l", "ROOT", "db-1", "id"},
			`gatehouse: login not allowed: "ROOT": logins must match ^[a-z_][a-z0-9_.-]*$ (did you mean "root"?)`},
		{"root denied by policy", []string{"-p", w.port, "root@db-1@127.0.0.1", "id"},
			"role ops denies root on db-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := alice.run("ssh", append([]string{"-o", "LogLevel=INFO"}, tt.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stdout, "uid=") {
				t.Fatalf("want refusal %q, got %s", tt.want, r)
			}
		})
	}
	if strings.Contains(w.sshd.Log(), "Accepted") {
		t.Fatalf("the target accepted a login:\n%s", w.sshd.Log())
	}
	evs, err := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventAuthFailure})
	if err != nil {
		t.Fatal(err)
	}
	var audited bool
	for _, e := range evs {
		audited = audited || strings.Contains(e.Reason, `login not allowed: "ROOT"`)
	}
	if !audited {
		t.Fatalf("refused login not audited: %+v", evs)
	}
}

// newWorldRoles is newWorld with one target db-1 (the real sshd, trusting
// the session CA) and the given roles and bindings instead of the standard
// ones.
func newWorldRoles(t *testing.T, rolesYAML string) *world {
	t.Helper()
	testenv.RequireBinary(t, "ssh", "apt-get install openssh-client")
	w := &world{t: t, dir: t.TempDir()}
	cfg0, err := config.Parse("bootstrap.yaml", []byte(fmt.Sprintf("data_dir: %s/data\n", w.dir)))
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
	sessionCA := a.SessionCAPublicKey()
	env.Close()
	w.sshd = testenv.StartSSHD(t, testenv.SSHDOptions{SessionCA: sessionCA})
	w.app = startBareGateway(t, w.dir, fmt.Sprintf("targets:\n  - name: db-1\n    address: %q\n    host_key: %q\n%s",
		w.sshd.Addr, w.sshd.HostKeyLine, rolesYAML))
	w.configFile = filepath.Join(w.dir, "gatehouse.yaml")
	_, w.port, _ = net.SplitHostPort(w.app.SSHAddr())
	w.kh = filepath.Join(w.dir, "known_hosts")
	os.WriteFile(w.kh, []byte("@cert-authority 127.0.0.1,[127.0.0.1]:*,db-1 "+string(ssh.MarshalAuthorizedKey(w.app.Authority.HostCAPublicKey()))), 0o644)
	return w
}

// TestCertificateValiditySpanRefused: certificates signed by the real user
// CA but never expiring, or valid for longer than certificates.max_user_ttl
// (24h), are refused with a line the user can act on, and audited.
func TestCertificateValiditySpanRefused(t *testing.T) {
	w := newWorld(t, "")
	signed := func(u *user, before uint64) {
		c := readCert(t, u.key+"-cert.pub")
		c.ValidAfter, c.ValidBefore = uint64(time.Now().Add(-time.Minute).Unix()), before
		c.Signature = nil
		if err := c.SignCert(rand.Reader, w.app.Authority.UserCASigner()); err != nil {
			t.Fatal(err)
		}
		u.setCert(c)
	}
	forever := w.newUser("alice", time.Hour)
	signed(forever, ssh.CertTimeInfinity)
	month := w.newUser("alice", time.Hour)
	signed(month, uint64(time.Now().Add(30*24*time.Hour).Unix()))
	for _, tt := range []struct {
		name, want string
		u          *user
	}{
		{"no expiry", "gatehouse: certificate never expires; this gateway accepts only short-lived certificates (run 'gatehouse login' for a new one)", forever},
		{"30 days", "gatehouse: certificate is valid for longer than this gateway allows (run 'gatehouse login' for a new one)", month},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.u.run("ssh", "-o", "LogLevel=INFO", "-p", w.port, "root@db-1@127.0.0.1", "echo in")
			if r.code != 255 || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
				t.Fatalf("want refusal %q, got %s", tt.want, r)
			}
		})
	}
	evs, err := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventAuthFailure})
	if err != nil {
		t.Fatal(err)
	}
	var noExpiry, tooLong bool
	for _, e := range evs {
		noExpiry = noExpiry || strings.Contains(e.Reason, "valid_before is infinity")
		tooLong = tooLong || strings.Contains(e.Reason, "certificates.max_user_ttl is 24h0m0s")
	}
	if !noExpiry || !tooLong {
		t.Fatalf("refusals not audited with their detail (no expiry %v, too long %v): %+v", noExpiry, tooLong, evs)
	}
	if r := w.newUser("alice", 24*time.Hour).direct("root", "db-1", "echo ok"); r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("a certificate of exactly max_user_ttl: %s", r)
	}
}

// TestScopedHostCA: `ca public --host` prints the host CA scoped to the
// gateway's names and the configured targets, never "*"; a client holding
// only the line the running gateway hands out reaches the gateway and, via
// ProxyJump, db-1, but the host CA vouches for no other name — not even
// "localhost", which the gateway's own host certificate carries.
func TestScopedHostCA(t *testing.T) {
	w := newWorld(t, "")
	caKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(w.app.Authority.HostCAPublicKey())))
	var targets []string // the harness's targets: db-1, dead-1, wrongkey-1, ...
	for _, tc := range w.app.Config.Targets {
		targets = append(targets, tc.Name)
	}
	names := strings.Join(targets, ",")
	if !strings.HasPrefix(names, "db-1,dead-1,wrongkey-1,") {
		t.Fatalf("harness targets changed: %s", names)
	}
	got := w.cli(t, gatehouseBinary(t), "ca", "public", "--host")
	want := "@cert-authority 127.0.0.1," + names + " " + caKey + " gatehouse-host-ca\n"
	if got != want {
		t.Fatalf("ca public --host\n got: %q\nwant: %q", got, want)
	}
	line := w.app.Config.KnownHostsCALine(w.app.Authority.HostCAPublicKey(), w.app.SSHAddr())
	if want := "@cert-authority 127.0.0.1,[127.0.0.1]:" + w.port + "," + names + " " + caKey + " gatehouse-host-ca"; line != want {
		t.Fatalf("line for the running gateway\n got: %q\nwant: %q", line, want)
	}
	if err := os.WriteFile(w.kh, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	alice := w.newUser("alice", time.Hour)
	if r := alice.direct("root", "db-1", "echo direct"); r.code != 0 || r.stdout != "direct\n" {
		t.Fatalf("direct with the scoped line: %s", r)
	}
	if r := alice.run("ssh", "db-1", "echo jumped"); r.code != 0 || r.stdout != "jumped\n" {
		t.Fatalf("ProxyJump with the scoped line: %s", r)
	}
	r := alice.run("ssh", "-p", w.port, "root@db-1@localhost", "echo pwned")
	if r.code != 255 || !strings.Contains(r.stderr, "Host key verification failed") || r.stdout != "" {
		t.Fatalf("the host CA vouched for a name outside its scope: %s", r)
	}
}

// TestSessionCAMigrationWarns: a data directory from before the session CA
// (user CA stored, no session CA) gets one when the gateway starts, with a
// WARN line telling the operator to move targets to `ca public --target`;
// the user CA is kept (certificates people hold stay valid), and the next
// start says nothing.
func TestSessionCAMigrationWarns(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	yaml := fmt.Sprintf("data_dir: %s/data\nssh: {listen: \"127.0.0.1:0\"}\nweb: {listen: \"127.0.0.1:0\"}\n", dir)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	env, err := app.OpenEnv(cfg)
	if err != nil {
		t.Fatal(err)
	}
	old, err := auth.LoadAuthority(context.Background(), env.Secrets, env.DB.DB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.DB.DB.Exec(`DELETE FROM secrets WHERE name = 'ca/session'`); err != nil { // as before the split
		t.Fatal(err)
	}
	env.Close()
	start := func() (*app.App, string) {
		var logs syncBuffer
		gw, err := app.Start(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Close(ctx)
		return gw, logs.String()
	}
	gw, logs := start()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "set each target's TrustedUserCAKeys to the output of 'gatehouse ca public --target'") {
		t.Fatalf("no migration warning in the log:\n%s", logs)
	}
	if string(gw.Authority.UserCAPublicKey().Marshal()) != string(old.UserCAPublicKey().Marshal()) {
		t.Fatal("the migration replaced the user CA")
	}
	if string(gw.Authority.SessionCAPublicKey().Marshal()) == string(old.UserCAPublicKey().Marshal()) {
		t.Fatal("the new session CA is the user CA")
	}
	if _, logs := start(); strings.Contains(logs, "session CA") {
		t.Fatalf("the second start warned again:\n%s", logs)
	}
}
