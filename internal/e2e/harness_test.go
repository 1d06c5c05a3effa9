package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// world is one gateway in front of one real sshd.
type world struct {
	t    *testing.T
	dir  string
	app  *app.App
	sshd *testenv.SSHD
	port string
	kh   string // known_hosts trusting the gateway's host CA

	users      int    // client key files written
	configFile string // the gateway's configuration
	dbCfg      string // the database section (empty on SQLite; see matrix_test.go)
}

// baseConfig is the gateway configuration every test starts from; %[1]s is
// the data dir, %[2]s the target address, %[3]s its host key line, %[4]s a
// closed port, %[5]s another key (not the target's).
const baseConfig = `data_dir: %[1]s/data
ssh:
  listen: "127.0.0.1:0"
  max_unauthenticated_per_ip: 200
  target_dial_timeout: 5s
%[6]s
targets:
  - name: db-1
    address: "%[2]s"
    host_key: "%[3]s"
    labels: {role: db, env: prod}
  - name: dead-1
    address: "127.0.0.1:%[4]s"
    host_key: "%[3]s"
    labels: {role: db}
  - name: wrongkey-1
    address: "%[2]s"
    host_key: "%[5]s"
    labels: {role: db}
  - name: mfa-1
    address: "%[2]s"
    host_key: "%[3]s"
    labels: {role: vault}
  - name: containers
    kind: docker
    docker_host: "unix:///var/run/docker.sock"
    labels: {env: dev}
roles:
  - name: payments
    allow:
      container_labels: {team: payments}
      logins: [root]
    options: {sftp: true}
  - name: dba
    allow:
      targets: {labels: {role: db}}
      logins: [root]
    options: {sftp: true, port_forwarding: true}
  - name: viewer
    allow:
      targets: {names: [db-1]}
      logins: [root]
  - name: sensitive
    allow:
      targets: {names: [db-1]}
      logins: [root]
    options: {require_session_mfa: true}
  - name: vault
    allow:
      targets: {names: [mfa-1]}
      logins: [root]
    options: {require_session_mfa: true}
  - name: admins
    options: {permissions: [admin, auditor], review_requests: [oncall, oncall-pair]}
  - name: oncall
    allow:
      targets: {names: [db-1]}
      logins: [root]
    options: {requestable: true, max_request_ttl: 2h, port_forwarding: true}
  - name: forward-idle
    allow:
      targets: {names: [db-1]}
      logins: [root]
    options: {port_forwarding: true, idle_timeout: 3s}
  - name: one-session
    options: {max_sessions: 1}
  - name: oncall-pair
    allow:
      targets: {names: [mfa-1]}
      logins: [root]
    options: {requestable: true, approvals_required: 2}
  - name: nobody-login
    allow:
      targets: {names: [db-1]}
      logins: [postgres]
  - name: runner
    allow:
      targets: {names: [db-1]}
      logins: [root]
      commands: ["echo *", "ls %[1]s/probe *", "printenv SSH_ORIGINAL_COMMAND", "shell:echo piped | tr a-z A-Z", "glob:ls %[1]s/logs/*.log", "head -c 1"]
    options: {sftp: true, port_forwarding: true, agent_forwarding: true}
  - name: box-runner
    allow:
      container_labels: {team: payments}
      logins: [root]
      commands: ["echo *"]
  - name: guard
    deny:
      commands: ["rm -rf", "shutdown"]
    warn:
      commands: ["echo warn-me *"]
bindings:
  - user: alice
    roles: [dba, payments]
  - user: bob
    roles: [viewer]
  - user: carol
    roles: [nobody-login]
  - user: test-user2
    roles: [dba, admins, vault]
  - user: dave
    roles: [sensitive]
  - user: rita
    roles: [runner, box-runner]
  - user: gina
    roles: [viewer, guard]
  - user: fiona
    roles: [forward-idle]
  - user: lina
    roles: [viewer, one-session]
`

// newWorld starts sshd trusting the gateway's session CA, and the gateway.
func newWorld(t *testing.T, sshdExtra string) *world {
	return newWorldWith(t, sshdExtra, "")
}

// newWorldWith also adds gwExtra (top-level YAML, e.g. a recording section)
// to the gateway configuration.
func newWorldWith(t *testing.T, sshdExtra, gwExtra string) *world {
	t.Helper()
	testenv.RequireBinary(t, "ssh", "apt-get install openssh-client")
	w := &world{t: t, dir: t.TempDir()}
	// Create the CA first: the target must trust it before the gateway runs.
	w.dbCfg = databaseConfig(t)
	dataCfg := fmt.Sprintf("data_dir: %s/data\n", w.dir) + w.dbCfg
	// gwExtra may move the CAs (ca.pkcs11): the bootstrap loads them the same way.
	// It follows an ssh section, as in baseConfig, so indented lines extend it.
	cfg0, err := config.Parse("bootstrap.yaml", []byte(dataCfg+"ssh:\n  listen: \"127.0.0.1:0\"\n"+gwExtra))
	if err != nil {
		t.Fatal(err)
	}
	env, err := app.OpenEnv(cfg0)
	if err != nil {
		t.Fatal(err)
	}
	a, closeCA, err := app.LoadAuthority(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	// The target trusts the session CA only, as docs/targets.md says.
	sessionCA := a.SessionCAPublicKey()
	closeCA()
	env.Close()
	w.sshd = testenv.StartSSHD(t, testenv.SSHDOptions{SessionCA: sessionCA,
		ExtraConfig: "MaxStartups 200\nMaxSessions 200\nAcceptEnv *\n" + sshdExtra})
	closed := freePort(t)
	_, otherPub := newKeyPair(t)
	if !strings.Contains(gwExtra, "web:") {
		gwExtra = "web:\n  listen: \"127.0.0.1:0\"\n" + gwExtra
	}
	yaml := fmt.Sprintf(baseConfig, w.dir, w.sshd.Addr, w.sshd.HostKeyLine, closed,
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherPub))), gwExtra)
	yaml = w.dbCfg + yaml
	w.configFile = filepath.Join(w.dir, "gatehouse.yaml")
	path := w.configFile
	os.WriteFile(path, []byte(yaml), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w.app, err = app.Start(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.app.Close(ctx)
	})
	_, w.port, _ = net.SplitHostPort(w.app.SSHAddr())
	w.kh = filepath.Join(w.dir, "known_hosts")
	os.WriteFile(w.kh, []byte("@cert-authority * "+string(ssh.MarshalAuthorizedKey(w.app.Authority.HostCAPublicKey()))), 0o644)
	return w
}

type testWriter struct{ t *testing.T }

func (tw *testWriter) Write(p []byte) (int, error) {
	tw.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// freePort is a port for a listener the test starts later, below the
// kernel's ephemeral range (testenv.FreePort).
func freePort(t *testing.T) string {
	addr, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func newKeyPair(t *testing.T) (ed25519.PrivateKey, ssh.PublicKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	return priv, sp
}

// user is one engineer's client side: a key, a certificate, an ssh_config.
type user struct {
	w      *world
	name   string
	key    string // private key file
	config string // ssh_config file
}

// newUser writes a key pair, a certificate from the gateway's user CA valid
// for ttl, and an ssh_config with the gateway as ProxyJump host "gw".
func (w *world) newUser(name string, ttl time.Duration) *user {
	w.t.Helper()
	w.users++
	u := &user{w: w, name: name, key: filepath.Join(w.dir, fmt.Sprintf("id_%s_%d", name, w.users))}
	priv, pub := newKeyPair(w.t)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(u.key, pem.EncodeToMemory(block), 0o600)
	cert, err := w.app.Authority.IssueUserCert(context.Background(), auth.UserCertRequest{
		Identity: auth.Identity{User: name}, PublicKey: pub, TTL: ttl})
	if err != nil {
		w.t.Fatal(err)
	}
	u.setCert(cert)
	u.config = u.key + ".ssh_config"
	conf := fmt.Sprintf(`Host gw
  HostName 127.0.0.1
  Port %[1]s
  User %[2]s
Host db-1 dead-1 wrongkey-1 nosuch-1
  ProxyJump gw
  User root
Host *
  IdentityFile %[3]s
  CertificateFile %[3]s-cert.pub
  IdentitiesOnly yes
  UserKnownHostsFile %[4]s
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 30
`, w.port, name, u.key, w.kh)
	os.WriteFile(u.config, []byte(conf), 0o644)
	return u
}

func (u *user) setCert(cert *ssh.Certificate) {
	os.WriteFile(u.key+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644)
}

// result of one client command.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
}

// cmd prepares a client program (ssh, scp, sftp, rsync) with the user's config.
func (u *user) cmd(ctx context.Context, prog string, args ...string) *exec.Cmd {
	switch prog {
	case "ssh", "scp", "sftp":
		args = append([]string{"-F", u.config}, args...)
	case "rsync":
		args = append([]string{"-e", "ssh -F " + u.config}, args...)
	}
	c := exec.CommandContext(ctx, prog, args...)
	c.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	return c
}

func (u *user) run(prog string, args ...string) result {
	u.w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := u.cmd(ctx, prog, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		u.w.t.Fatalf("%s %v: %v", prog, args, err)
	}
	return r
}

// direct runs ssh with login@target@gateway addressing.
func (u *user) direct(login, target string, args ...string) result {
	return u.run("ssh", append([]string{"-p", u.w.port, login + "@" + target + "@127.0.0.1"}, args...)...)
}

// waitFor polls cond until it holds or the wait is over (a wait, not a
// timing assertion).
// waitFor polls cond until it holds. The deadline is generous on purpose:
// it only bounds a hung test, and CI machines are small and busy.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
