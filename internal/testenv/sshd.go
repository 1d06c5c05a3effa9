package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDPath is where Debian's openssh-server puts sshd.
const SSHDPath = "/usr/sbin/sshd"

// SSHDOptions configures StartSSHD.
type SSHDOptions struct {
	// SessionCA is the one key trusted with TrustedUserCAKeys, as
	// docs/targets.md configures a target: the gateway's session CA
	// (auth.Authority.SessionCAPublicKey), never its user CA. Certificate
	// principals must equal the login, as sshd does by default.
	SessionCA ssh.PublicKey
	// HostCASigner, if set, signs the host key into a host certificate for
	// the principals HostCertPrincipals (default "127.0.0.1").
	HostCASigner       ssh.Signer
	HostCertPrincipals []string
	// HostCert documents the intent at the call site; a host certificate
	// is made whenever HostCASigner is set, and HostCert without a
	// HostCASigner fails the test.
	HostCert bool
	// ExtraConfig is appended to sshd_config.
	ExtraConfig string
}

// SSHD is a real OpenSSH server on a loopback port.
type SSHD struct {
	Addr        string // 127.0.0.1:port
	Port        int
	HostKey     ssh.PublicKey
	HostKeyLine string // authorized_keys form
	Dir         string
	cmd         *exec.Cmd
	logFile     string
	config      string
}

// StartSSHD starts sshd -D with a fresh host key and temp config, and waits
// until it accepts connections. It is stopped when the test ends.
func StartSSHD(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	_, err := os.Stat(SSHDPath)
	Require(t, "sshd", "apt-get install openssh-server", err == nil)
	os.MkdirAll("/run/sshd", 0o755)
	d := &SSHD{Dir: t.TempDir()}
	hostKey := filepath.Join(d.Dir, "ssh_host_ed25519_key")
	signer := writeKey(t, hostKey)
	d.HostKey = signer.PublicKey()
	d.HostKeyLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(d.HostKey)))
	var conf strings.Builder
	addr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	d.Port, _ = strconv.Atoi(port)
	d.Addr = addr
	fmt.Fprintf(&conf, "Port %d\nListenAddress 127.0.0.1\nHostKey %s\n", d.Port, hostKey)
	if opts.SessionCA != nil {
		ca := filepath.Join(d.Dir, "gatehouse_session_ca.pub")
		os.WriteFile(ca, ssh.MarshalAuthorizedKey(opts.SessionCA), 0o644)
		fmt.Fprintf(&conf, "TrustedUserCAKeys %s\n", ca)
	}
	if opts.HostCert && opts.HostCASigner == nil {
		t.Fatal("testenv: SSHDOptions.HostCert needs a HostCASigner")
	}
	if opts.HostCASigner != nil {
		principals := opts.HostCertPrincipals
		if len(principals) == 0 {
			principals = []string{"127.0.0.1"}
		}
		cert := &ssh.Certificate{Key: d.HostKey, CertType: ssh.HostCert, KeyId: "test-host", ValidPrincipals: principals,
			ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(24 * time.Hour).Unix())}
		if err := cert.SignCert(rand.Reader, opts.HostCASigner); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(hostKey+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644)
		fmt.Fprintf(&conf, "HostCertificate %s-cert.pub\n", hostKey)
	}
	conf.WriteString(`AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
UsePAM no
StrictModes no
LogLevel VERBOSE
PidFile none
AllowTcpForwarding yes
AllowAgentForwarding yes
Subsystem sftp /usr/lib/openssh/sftp-server
`)
	// OpenSSH's default MaxStartups 10:30:100 drops concurrent handshakes
	// at random; tests run many at once.
	conf.WriteString("MaxStartups 1000\n")
	conf.WriteString(opts.ExtraConfig)
	d.config = filepath.Join(d.Dir, "sshd_config")
	d.logFile = filepath.Join(d.Dir, "sshd.log")
	if err := os.WriteFile(d.config, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(SSHDPath, "-t", "-f", d.config).CombinedOutput(); err != nil {
		t.Fatalf("sshd config test: %v: %s", err, out)
	}
	d.cmd = exec.Command(SSHDPath, "-D", "-e", "-f", d.config, "-E", d.logFile)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(d.KillAll)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not start listening on %s; log:\n%s", d.Addr, d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns what sshd has logged so far.
func (d *SSHD) Log() string {
	b, _ := os.ReadFile(d.logFile)
	return string(b)
}

// Kill kills sshd and every session process it started with SIGKILL, as
// when the target host dies (for "target killed mid-session" tests).
func (d *SSHD) Kill() { d.KillAll() }

// KillListener kills the listening sshd only; established sessions live on
// in their own sshd processes.
func (d *SSHD) KillListener() {
	if d.cmd.Process != nil {
		d.cmd.Process.Kill()
		d.cmd.Wait()
	}
}

// Stop shuts sshd down in order (SIGTERM to the listener and its sessions)
// and waits for the listener to exit.
func (d *SSHD) Stop() {
	if d.cmd.Process == nil || d.cmd.ProcessState != nil {
		return
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
	d.cmd.Wait()
}

// KillAll kills the listener and every session process it started (SIGKILL
// to its process group, and to per-connection children that left it), as
// when the target host dies.
func (d *SSHD) KillAll() {
	if d.cmd.Process == nil {
		return
	}
	pids := descendants(d.cmd.Process.Pid)
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	d.cmd.Wait()
}

// descendants lists the processes below pid (sshd's per-connection and
// session processes may leave its process group with setsid).
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the parenthesised command: state ppid ...
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 1 {
				pp, _ := strconv.Atoi(f[1])
				children[pp] = append(children[pp], p)
			}
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// writeKey creates an Ed25519 private key file (0600) in OpenSSH format.
func writeKey(t testing.TB, path string) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
