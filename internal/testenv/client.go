package testenv

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Client runs the real OpenSSH client programs (ssh, scp, sftp, rsync) with
// a fresh key pair of its own and its own known_hosts file; no ssh-agent and
// no user or system ssh_config is consulted.
type Client struct {
	Dir        string // temp directory holding the files below
	KeyFile    string // id_ed25519 (OpenSSH format, 0600)
	CertFile   string // id_ed25519-cert.pub, written by SetCert
	KnownHosts string // known_hosts, written by TrustHostCA / TrustHostKey
	Signer     ssh.Signer
	PublicKey  ssh.PublicKey
	// Extra are more ssh options given to every program, after the common
	// ones: e.g. "-o", "Port=2222" (the only way to give rsync a port).
	Extra []string
	t     testing.TB
}

// NewClient creates a client directory with a new Ed25519 key pair and an
// empty known_hosts file (so every host is unknown until trusted).
func NewClient(t testing.TB) *Client {
	t.Helper()
	RequireBinary(t, "ssh", "apt-get install openssh-client")
	c := &Client{Dir: t.TempDir(), t: t}
	c.KeyFile = filepath.Join(c.Dir, "id_ed25519")
	c.CertFile = c.KeyFile + "-cert.pub"
	c.KnownHosts = filepath.Join(c.Dir, "known_hosts")
	c.Signer = writeKey(t, c.KeyFile)
	c.PublicKey = c.Signer.PublicKey()
	mustWrite(t, c.KeyFile+".pub", ssh.MarshalAuthorizedKey(c.PublicKey), 0o644)
	mustWrite(t, c.KnownHosts, nil, 0o600)
	return c
}

// SetCert writes cert as the client's certificate file.
func (c *Client) SetCert(cert *ssh.Certificate) {
	c.t.Helper()
	mustWrite(c.t, c.CertFile, ssh.MarshalAuthorizedKey(cert), 0o644)
}

// TrustHostCA adds a @cert-authority line for hosts matching pattern (e.g.
// "127.0.0.1" or "[127.0.0.1]:2222" or "*").
func (c *Client) TrustHostCA(pattern string, ca ssh.PublicKey) {
	c.t.Helper()
	c.addKnownHost("@cert-authority " + pattern + " " + authorizedLine(ca))
}

// TrustHostKey pins key for hostport ("127.0.0.1:2222" or a host name).
func (c *Client) TrustHostKey(hostport string, key ssh.PublicKey) {
	c.t.Helper()
	c.addKnownHost(knownHostsPattern(hostport) + " " + authorizedLine(key))
}

func (c *Client) addKnownHost(line string) {
	t := c.t
	t.Helper()
	f, err := os.OpenFile(c.KnownHosts, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("testenv: known_hosts: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatalf("testenv: known_hosts: %v", err)
	}
}

// knownHostsPattern turns host:port into known_hosts syntax ([host]:port,
// or plain host for port 22).
func knownHostsPattern(hostport string) string {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.HasPrefix(hostport, "[") {
		return hostport
	}
	host, port := hostport[:i], hostport[i+1:]
	if port == "22" {
		return host
	}
	return "[" + host + "]:" + port
}

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// Options returns the -o style options common to ssh, scp and sftp: only
// this client's key and certificate, only its known_hosts, strict host key
// checking, no prompts.
func (c *Client) Options() []string {
	opts := []string{"-F", "none",
		"-o", "IdentitiesOnly=yes", "-o", "IdentityFile=" + c.KeyFile, "-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + c.KnownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"}
	if _, err := os.Stat(c.CertFile); err == nil {
		opts = append(opts, "-o", "CertificateFile="+c.CertFile)
	}
	return append(opts, c.Extra...)
}

// SSHArgs returns the common arguments for ssh (the same as Options).
func (c *Client) SSHArgs() []string { return c.Options() }

// Result is what a finished client program left behind.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// Command builds an exec.Cmd for name (ssh, scp, sftp or rsync) with this
// client's options placed before args, for callers that wire stdin/stdout
// themselves. SSH_AUTH_SOCK is removed from its environment.
func (c *Client) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var full []string
	switch name {
	case "rsync":
		full = append([]string{"-e", c.rsyncShell()}, args...)
	default: // ssh, scp and sftp take the same -F and -o options
		full = append(c.Options(), args...)
	}
	cmd := exec.CommandContext(ctx, name, full...)
	cmd.Env = clientEnv(c.Dir)
	return cmd
}

// rsyncShell is rsync's -e value: ssh with the common options, quoted for
// rsync's own word splitting.
func (c *Client) rsyncShell() string {
	parts := []string{"ssh"}
	for _, o := range c.Options() {
		parts = append(parts, shellQuote(o))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// clientEnv is the process environment without ssh-agent, with HOME in the
// client directory so no ~/.ssh file of the real user is read.
func clientEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SSH_AUTH_SOCK=") || strings.HasPrefix(kv, "SSH_AGENT_PID=") ||
			strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

// Run runs name with args to completion and returns its output and exit
// code. A program that cannot start at all fails the test.
func (c *Client) Run(ctx context.Context, name string, args ...string) Result {
	t := c.t
	t.Helper()
	RequireBinary(t, name, "apt-get install "+clientPackage(name))
	cmd := c.Command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	default:
		t.Fatalf("testenv: run %s: %v", name, err)
	}
	return res
}

func clientPackage(name string) string {
	if name == "rsync" {
		return "rsync"
	}
	return "openssh-client"
}

func mustWrite(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
