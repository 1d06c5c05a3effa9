package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
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
)

// offeredRE matches one algorithm line of ssh-audit's report.
var offeredRE = regexp.MustCompile(`(?m)^\((kex|key|enc|mac)\) (\S+)`)

// checkAudit fails the test on any "[fail]" finding, any SHA-1 or DSA
// algorithm and any MAC that is not encrypt-then-MAC in an ssh-audit report
// (ssh-audit 2.5 only warns on some of these), and returns the offered
// algorithms.
func checkAudit(t *testing.T, report string) []string {
	t.Helper()
	var offered []string
	for _, m := range offeredRE.FindAllStringSubmatch(report, -1) {
		offered = append(offered, m[2])
		if strings.Contains(m[2], "sha1") || m[2] == "ssh-rsa" || m[2] == "ssh-dss" {
			t.Errorf("SHA-1 or DSA algorithm offered: (%s) %s", m[1], m[2])
		}
		aead := strings.Contains(m[2], "poly1305") || strings.Contains(m[2], "gcm")
		if m[1] == "mac" && !strings.HasSuffix(m[2], "-etm@openssh.com") && !aead {
			t.Errorf("MAC that is not encrypt-then-MAC offered: %s", m[2])
		}
	}
	for _, l := range strings.Split(report, "\n") {
		if strings.Contains(l, "[fail]") || strings.Contains(l, "(fail)") {
			t.Errorf("ssh-audit: %s", strings.TrimSpace(l))
		}
	}
	if len(offered) == 0 {
		t.Fatalf("ssh-audit reported no algorithms:\n%s", report)
	}
	if t.Failed() {
		t.Logf("full report:\n%s", report)
	}
	return offered
}

// TestSSHAuditGateway runs the real ssh-audit against the gateway's SSH
// port: no "fail", no SHA-1, post-quantum and curve25519 key exchange kept.
func TestSSHAuditGateway(t *testing.T) {
	bin := testenv.RequireBinary(t, "ssh-audit", "apt-get install ssh-audit")
	w := newWorld(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "-n", "-t", "30", "-p", w.port, "127.0.0.1").CombinedOutput()
	offered := checkAudit(t, string(out))
	for _, want := range []string{"mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org",
		"hmac-sha2-256-etm@openssh.com", "ssh-ed25519"} {
		if !strings.Contains(strings.Join(offered, " ")+" ", want+" ") {
			t.Errorf("gateway does not offer %s; offered %v", want, offered)
		}
	}
}

// TestSSHAuditGatewayAsClient audits the gateway's outbound leg: a loopback
// "target" records the KEXINIT the gateway sends when it dials, and the real
// ssh-audit judges every algorithm in it (--lookup; its own client-audit
// server cannot bind to loopback only): no "fail", no SHA-1.
func TestSSHAuditGatewayAsClient(t *testing.T) {
	bin := testenv.RequireBinary(t, "ssh-audit", "apt-get install ssh-audit")
	testenv.RequireBinary(t, "ssh", "apt-get install openssh-client")
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	kexinit := make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		fmt.Fprint(c, "SSH-2.0-OpenSSH_9.2p1\r\n")
		names, err := readKexInit(c)
		if err != nil {
			t.Errorf("reading the gateway's KEXINIT: %v", err)
		}
		kexinit <- names
	}()
	_, otherPub := newKeyPair(t)
	gw := startBareGateway(t, dir, fmt.Sprintf(`targets:
  - name: audit-1
    address: %q
    host_key: %q
roles:
  - name: any
    allow: {targets: {names: [audit-1]}, logins: [root]}
bindings:
  - {user: alice, roles: [any]}
`, ln.Addr().String(), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherPub)))))
	key, kh := clientFiles(t, gw, dir, "alice")
	_, gwPort, _ := net.SplitHostPort(gw.SSHAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "ssh", "-F", "none", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes", "-p", gwPort, "root@audit-1@127.0.0.1", "true")
	c.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	c.CombinedOutput() // the "target" hangs up after KEXINIT; the refusal is not what is tested
	var names []string
	select {
	case names = <-kexinit:
	case <-ctx.Done():
		t.Fatal("the gateway never dialled the target")
	}
	if len(names) == 0 {
		t.Fatal("empty KEXINIT")
	}
	out, _ := exec.CommandContext(ctx, bin, "-n", "--lookup="+strings.Join(names, ",")).CombinedOutput()
	checkAudit(t, string(out))
}

// readKexInit reads the peer's version line and its first packet, a
// KEXINIT, and returns the names in its key exchange, host key, cipher and
// MAC lists (RFC 4253 section 7.1), without the kex pseudo-algorithms.
func readKexInit(c net.Conn) ([]string, error) {
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
		return nil, fmt.Errorf("version line %q: %v", line, err)
	}
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 2 || n > 1<<16 {
		return nil, fmt.Errorf("packet length %d", n)
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	payload := body[:len(body)-int(hdr[4])]
	if len(payload) < 17 || payload[0] != 20 {
		return nil, fmt.Errorf("first packet is not KEXINIT")
	}
	p := payload[17:]
	seen := map[string]bool{}
	var names []string
	for i := 0; i < 6; i++ { // kex, host key, cipher c2s/s2c, MAC c2s/s2c
		if len(p) < 4 || int(binary.BigEndian.Uint32(p)) > len(p)-4 {
			return nil, fmt.Errorf("truncated name-list %d", i)
		}
		l := binary.BigEndian.Uint32(p)
		for _, name := range strings.Split(string(p[4:4+l]), ",") {
			if name != "" && !seen[name] && name != "ext-info-c" && !strings.HasPrefix(name, "kex-strict-") {
				seen[name] = true
				names = append(names, name)
			}
		}
		p = p[4+l:]
	}
	return names, nil
}

// TestWeakAlgorithmsRefused: an OpenSSH client offering only SHA-1 key
// exchange or only SHA-1 MACs is refused by the front door and by the
// ProxyJump inner server, while the defaults work on both.
func TestWeakAlgorithmsRefused(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	weakKex := []string{"-o", "KexAlgorithms=diffie-hellman-group14-sha1,diffie-hellman-group1-sha1"}
	weakMAC := []string{"-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1,hmac-sha2-256"}
	tests := []struct {
		name string
		args []string
		want string // in stderr; "" means success
	}{
		{"front door, defaults", []string{"-p", w.port, "root@db-1@127.0.0.1", "echo ok"}, ""},
		{"front door, SHA-1 kex", append(weakKex, "-p", w.port, "root@db-1@127.0.0.1", "true"), "no matching key exchange method found"},
		{"front door, non-ETM MACs", append(weakMAC, "-p", w.port, "root@db-1@127.0.0.1", "true"), "no matching MAC found"},
		{"proxyjump inner, defaults", []string{"db-1", "echo ok"}, ""},
		{"proxyjump inner, SHA-1 kex", append(weakKex, "db-1", "true"), "no matching key exchange method found"},
		{"proxyjump inner, non-ETM MACs", append(weakMAC, "db-1", "true"), "no matching MAC found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := alice.run("ssh", tt.args...)
			if tt.want == "" {
				if r.code != 0 || r.stdout != "ok\n" {
					t.Fatalf("default algorithms: %s", r)
				}
				return
			}
			if r.code != 255 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("want refusal %q, got %s", tt.want, r)
			}
		})
	}
}

// startBareGateway starts a gateway with data_dir in dir, loopback
// listeners and extra YAML (targets, roles, bindings).
func startBareGateway(t *testing.T, dir, extra string) *app.App {
	t.Helper()
	yaml := fmt.Sprintf("data_dir: %s/data\nssh:\n  listen: \"127.0.0.1:0\"\n  target_dial_timeout: 10s\nweb:\n  listen: \"127.0.0.1:0\"\n%s", dir, extra)
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := app.Start(cfg, slog.New(slog.NewTextHandler(&testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Close(ctx)
	})
	return gw
}

// clientFiles writes a key, a user certificate for name and a known_hosts
// trusting the gateway's host CA; it returns the key and known_hosts paths.
func clientFiles(t *testing.T, gw *app.App, dir, name string) (key, kh string) {
	t.Helper()
	priv, pub := newKeyPair(t)
	key = filepath.Join(dir, "id_"+name)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
	cert, err := gw.Authority.IssueUserCert(context.Background(), auth.UserCertRequest{
		Identity: auth.Identity{User: name}, PublicKey: pub, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(key+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644)
	kh = filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte("@cert-authority 127.0.0.1,[127.0.0.1]:* "+string(ssh.MarshalAuthorizedKey(gw.Authority.HostCAPublicKey()))), 0o644)
	return key, kh
}
