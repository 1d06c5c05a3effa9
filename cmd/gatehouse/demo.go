package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/demoidp"
)

func init() {
	register(command{name: "demo", summary: "run everything on embedded defaults and print what to type", run: runDemo})
}

// demoConfig is the embedded configuration of the demo: one local OpenSSH
// target started by the demo itself, one user and one role.
var demoConfig = template.Must(template.New("demo").Parse(`# Written by 'gatehouse demo'; see docs/config.md.
data_dir: {{.Dir}}/data
ssh:
  listen: "{{.Listen}}"
web:
  listen: "{{.WebListen}}"
  public_url: "http://{{.WebListen}}"
  insecure_http: true       # demo only: plain HTTP on loopback
oidc:                       # the demo's own OpenID Provider (zitadel/oidc example server)
  issuer: "{{.Issuer}}"
  client_id: gatehouse-demo
  client_secret_file: "{{.Dir}}/oidc-secret"
targets:
  - name: demo
    address: "{{.TargetAddr}}"
    host_key: "{{.HostKey}}"
    labels: {env: demo}
roles:
  - name: demo
    allow:
      targets: {labels: {env: demo}}
      logins: ["{{.Login}}"]
    options: {sftp: true, port_forwarding: true, max_session_ttl: 8h, permissions: [admin, auditor]}
bindings:
  - user: demo
    roles: [demo]
  - user: test-user2        # the demo IdP's user (password: verysecure)
    roles: [demo]
`))

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs, _ := newFlags("demo", stderr)
	dir := fs.String("dir", defaultDemoDir(), "directory for the demo's data, keys and configuration")
	listen := fs.String("listen", "127.0.0.1:2222", "SSH listen address of the demo gateway")
	webListen := fs.String("web", "127.0.0.1:8080", "web UI listen address of the demo gateway")
	reset := fs.Bool("reset", false, "delete the demo directory first")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if *reset {
		os.RemoveAll(abs)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	login, err := currentLogin()
	if err != nil {
		return err
	}
	target, err := startDemoTarget(abs, stderr)
	if err != nil {
		return err
	}
	defer target.stop()
	issuer, stopIdP, err := startDemoIdP(abs, *webListen)
	if err != nil {
		return err
	}
	defer stopIdP()
	cfg, err := writeDemoConfig(abs, *listen, *webListen, issuer, login, target)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log) // quiets the demo IdP's request log too
	a, err := app.Start(cfg, log)
	if err != nil {
		return err
	}
	if err := target.trust(a.Authority.SessionCAPublicKey()); err != nil {
		a.Close(context.Background())
		return err
	}
	sshCfg, err := writeDemoClient(abs, a, login)
	if err != nil {
		a.Close(context.Background())
		return err
	}
	printDemo(stdout, demoPrint{dir: abs, addr: a.SSHAddr(), webAddr: a.WebAddr(), login: login, sshCfg: sshCfg, cli: cliName()})
	return waitDemo(a, stdout, stderr)
}

// waitDemo runs until the first Ctrl-C (or SIGTERM), then stops the gateway
// within a few seconds; a second Ctrl-C exits at once.
func waitDemo(a *app.App, stdout, stderr io.Writer) error {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-sig:
		fmt.Fprintln(stdout, "\nStopping the demo (open sessions are ended)...")
	case err := <-a.Err():
		fmt.Fprintln(stderr, "gatehouse demo:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Close(ctx) }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	case <-time.After(6 * time.Second):
		// A connection still in its handshake (a login waiting for its
		// browser approval) is cut when the process exits.
	case <-sig:
		return errors.New("stopped at once by a second interrupt")
	}
	fmt.Fprintln(stdout, "Gatehouse demo stopped.")
	return nil
}

// defaultDemoDir keeps the demo's data out of the checkout:
// $XDG_STATE_HOME/gatehouse-demo, else ~/.local/state/gatehouse-demo.
func defaultDemoDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "gatehouse-demo")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "gatehouse-demo")
	}
	return "gatehouse-demo"
}

// cliName is how the printed commands call this binary: "gatehouse" when
// that is what the shell finds on PATH, else this binary's absolute path,
// so every printed command runs as printed.
func cliName() string {
	self, err := os.Executable()
	if err != nil {
		return "gatehouse"
	}
	if p, err := exec.LookPath("gatehouse"); err == nil {
		a, errA := os.Stat(p)
		b, errB := os.Stat(self)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "gatehouse"
		}
	}
	return shellQuote(self)
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func currentLogin() (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

// demoTarget is a private sshd on loopback that trusts the demo's user CA.
type demoTarget struct {
	dir, addr, hostKey string
	cmd                *exec.Cmd
}

const sshdPath = "/usr/sbin/sshd"

func startDemoTarget(dir string, stderr io.Writer) (*demoTarget, error) {
	if _, err := os.Stat(sshdPath); err != nil {
		return nil, errors.New("the demo starts a local OpenSSH server as its target: install it first (apt-get install openssh-server)")
	}
	t := &demoTarget{dir: filepath.Join(dir, "target")}
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return nil, err
	}
	os.MkdirAll("/run/sshd", 0o755)
	keyFile := filepath.Join(t.dir, "ssh_host_ed25519_key")
	pub, err := ensureKey(keyFile)
	if err != nil {
		return nil, err
	}
	t.hostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t.addr = ln.Addr().String()
	ln.Close()
	return t, nil
}

// trust writes the sshd configuration trusting ca (the session CA) and starts sshd.
func (t *demoTarget) trust(ca ssh.PublicKey) error {
	caFile := filepath.Join(t.dir, "gatehouse_session_ca.pub")
	if err := os.WriteFile(caFile, ssh.MarshalAuthorizedKey(ca), 0o644); err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(t.addr)
	conf := fmt.Sprintf(`# The demo target: trusts only per-session certificates from the Gatehouse session CA.
Port %s
ListenAddress 127.0.0.1
HostKey %s
TrustedUserCAKeys %s
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
LogLevel VERBOSE
PidFile none
Subsystem sftp /usr/lib/openssh/sftp-server
`, port, filepath.Join(t.dir, "ssh_host_ed25519_key"), caFile)
	cf := filepath.Join(t.dir, "sshd_config")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return err
	}
	t.cmd = exec.Command(sshdPath, "-D", "-e", "-f", cf, "-E", filepath.Join(t.dir, "sshd.log"))
	if err := t.cmd.Start(); err != nil {
		return fmt.Errorf("start demo sshd: %w", err)
	}
	for i := 0; i < 50; i++ {
		if c, err := net.DialTimeout("tcp", t.addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("demo sshd did not start; see %s", filepath.Join(t.dir, "sshd.log"))
}

func (t *demoTarget) stop() {
	if t.cmd != nil && t.cmd.Process != nil {
		t.cmd.Process.Kill()
		t.cmd.Wait()
	}
}

// ensureKey loads or creates an Ed25519 private key file in OpenSSH format.
func ensureKey(path string) (ssh.PublicKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return s.PublicKey(), nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return sp, os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sp), 0o644)
}

func writeDemoConfig(dir, listen, webListen, issuer, login string, t *demoTarget) (*config.Config, error) {
	var b strings.Builder
	err := demoConfig.Execute(&b, map[string]string{"Dir": dir, "Listen": listen, "WebListen": webListen, "Issuer": issuer,
		"TargetAddr": t.addr, "HostKey": t.hostKey, "Login": login})
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	return config.Load(path)
}

// writeDemoClient issues the demo user's certificate and writes an
// ssh_config so plain ssh, scp, sftp and rsync work through the gateway.
func writeDemoClient(dir string, a *app.App, login string) (string, error) {
	keyFile := filepath.Join(dir, "client", "id_ed25519")
	os.MkdirAll(filepath.Dir(keyFile), 0o700)
	pub, err := ensureKey(keyFile)
	if err != nil {
		return "", err
	}
	cert, err := a.Authority.IssueUserCert(context.Background(), auth.UserCertRequest{
		Identity: auth.Identity{User: "demo"}, PublicKey: pub, TTL: 8 * time.Hour})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(keyFile+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		return "", err
	}
	plainKey := filepath.Join(dir, "client", "plain_ed25519")
	if _, err := ensureKey(plainKey); err != nil {
		return "", err
	}
	kh := filepath.Join(dir, "client", "known_hosts")
	if err := os.WriteFile(kh, []byte(a.Config.KnownHostsCALine(a.Authority.HostCAPublicKey(), a.SSHAddr())+"\n"), 0o644); err != nil {
		return "", err
	}
	host, port, _ := net.SplitHostPort(a.SSHAddr())
	cfgFile := filepath.Join(dir, "client", "ssh_config")
	conf := fmt.Sprintf(`# Written by 'gatehouse demo'. Use: ssh -F %[1]s ...
Host gatehouse gatehouse-plain
  HostName %[2]s
  Port %[3]s
  User demo
# gatehouse-plain: a plain key without a certificate (approved in the browser)
Host gatehouse-plain
  IdentityFile %[7]s
Host * !gatehouse-plain
  IdentityFile %[4]s
  CertificateFile %[4]s-cert.pub
Host *
  IdentitiesOnly yes
  UserKnownHostsFile %[5]s
  StrictHostKeyChecking yes
Host demo
  ProxyJump gatehouse
  User %[6]s
`, cfgFile, host, port, keyFile, kh, login, plainKey)
	return cfgFile, os.WriteFile(cfgFile, []byte(conf), 0o644)
}

// demoPrint is what printDemo shows: real addresses, login and paths.
type demoPrint struct {
	dir, addr, webAddr, login, sshCfg string
	cli                               string // how to call this binary (see cliName)
}

func printDemo(w io.Writer, p demoPrint) {
	host, port, _ := net.SplitHostPort(p.addr)
	cfg := shellQuote(p.sshCfg)
	conf := shellQuote(filepath.Join(p.dir, "gatehouse.yaml"))
	fmt.Fprintf(w, `Gatehouse demo is running. Stop it with Ctrl-C. Data, keys and configuration are in
%[1]s (%[7]s demo --reset starts over).

A local OpenSSH server is the target "demo"; it trusts only the gateway's session CA
(gatehouse ca public --target), so only per-session certificates get in, never yours.
You are user "demo", with a certificate in %[1]s/client. Try, in another terminal:

  ssh -F %[2]s -p %[4]s %[5]s@demo@%[3]s 'hostname; whoami'   # direct: login@target@gateway
  ssh -F %[2]s demo 'uname -a; exit 3'; echo $?   # ProxyJump, recorded too
  ssh -F %[2]s -p %[4]s demo@%[3]s   # no target: what you may reach
  scp -F %[2]s /etc/hostname demo:/tmp/gatehouse-copied   # scp, sftp and rsync work as usual
  ssh -F %[2]s -p %[4]s nobody@demo@%[3]s   # refused, with the reason
  printf 'hostname\nid -un\n' | ssh -F %[2]s demo bash   # a script on stdin: commands listed

Every session is recorded and audited:
  %[7]s recording list --config %[8]s
  %[7]s audit verify --config %[8]s

Web UI (plain HTTP, loopback only): http://%[6]s
  Log in as test-user2 / verysecure at the demo's identity provider, enrol TOTP with any
  authenticator app, then see the overview, replay sessions, watch live ones and verify
  and export the audit log. Plain ssh with a key that has no certificate works too, once
  you approve it in the browser:
  ssh -F %[2]s %[5]s@demo@gatehouse-plain
`, p.dir, cfg, host, port, p.login, p.webAddr, p.cli, conf)
}

// startDemoIdP runs an OpenID Provider on loopback for the demo (the
// zitadel/oidc example server with its preset users) and registers the
// demo gateway as a client.
func startDemoIdP(dir, webListen string) (issuer string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	issuer = "http://" + ln.Addr().String()
	demoidp.RegisterClient("gatehouse-demo", "demo-secret", "http://"+webListen+"/oidc/callback")
	srv := &http.Server{Handler: demoidp.Handler(issuer), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	if err := os.WriteFile(filepath.Join(dir, "oidc-secret"), []byte("demo-secret\n"), 0o600); err != nil {
		srv.Close()
		return "", nil, err
	}
	return issuer, func() { srv.Close() }, nil
}
