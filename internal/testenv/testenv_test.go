package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/ssh"
)

// newCA returns a fresh Ed25519 signer standing in for a certificate
// authority (generated per test, never stored).
func newCA(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// userCert signs the client's key for principal with a KeyId unique to the
// test.
func userCert(t *testing.T, ca ssh.Signer, c *Client, principal, keyID string) {
	t.Helper()
	cert := &ssh.Certificate{Key: c.PublicKey, CertType: ssh.UserCert, KeyId: keyID, Serial: 4242,
		ValidPrincipals: []string{principal},
		ValidAfter:      uint64(time.Now().Add(-time.Minute).Unix()),
		ValidBefore:     uint64(time.Now().Add(time.Hour).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	c.SetCert(cert)
}

// sshWorld is an sshd trusting a user CA and a client holding a root
// certificate from it, with the sshd host key pinned.
type sshWorld struct {
	sshd   *SSHD
	client *Client
	keyID  string
}

func newSSHWorld(t *testing.T) *sshWorld {
	t.Helper()
	ca := newCA(t)
	w := &sshWorld{sshd: StartSSHD(t, SSHDOptions{SessionCA: ca.PublicKey()}), client: NewClient(t)}
	w.keyID = fmt.Sprintf("testenv-self-test-%d", time.Now().UnixNano())
	userCert(t, ca, w.client, "root", w.keyID)
	w.client.TrustHostKey(w.sshd.Addr, w.sshd.HostKey)
	return w
}

func (w *sshWorld) ssh(args ...string) Result {
	full := append([]string{"-p", strconv.Itoa(w.sshd.Port), "root@127.0.0.1"}, args...)
	return w.client.Run(context.Background(), "ssh", full...)
}

func TestSSHExitStatusAndCertInLog(t *testing.T) {
	w := newSSHWorld(t)
	res := w.ssh("echo hi; exit 3")
	if res.Stdout != "hi\n" || res.ExitCode != 3 {
		t.Fatalf("got stdout %q exit %d (stderr %q), want \"hi\\n\" and 3", res.Stdout, res.ExitCode, res.Stderr)
	}
	if log := w.sshd.Log(); !strings.Contains(log, `ID `+w.keyID+` (serial 4242)`) {
		t.Fatalf("sshd log does not name the certificate %s:\n%s", w.keyID, log)
	}
}

func TestSSHRefusals(t *testing.T) {
	w := newSSHWorld(t)
	t.Run("unknown host key", func(t *testing.T) {
		other := NewClient(t)
		other.SetCert(readCert(t, w.client.CertFile))
		copyFile(t, w.client.KeyFile, other.KeyFile)
		res := other.Run(context.Background(), "ssh", "-p", strconv.Itoa(w.sshd.Port), "root@127.0.0.1", "true")
		if res.ExitCode != 255 || !strings.Contains(res.Stderr, "Host key verification failed") {
			t.Fatalf("exit %d stderr %q, want host key verification to fail", res.ExitCode, res.Stderr)
		}
	})
	t.Run("principal is not the login", func(t *testing.T) {
		res := w.client.Run(context.Background(), "ssh", "-p", strconv.Itoa(w.sshd.Port), "nobody@127.0.0.1", "true")
		if res.ExitCode != 255 || !strings.Contains(res.Stderr, "Permission denied") {
			t.Fatalf("exit %d stderr %q, want permission denied", res.ExitCode, res.Stderr)
		}
	})
}

func readCert(t *testing.T, path string) *ssh.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ssh.Certificate)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, to, b, 0o600)
}

func TestHostCertificate(t *testing.T) {
	sessionCA, hostCA := newCA(t), newCA(t)
	d := StartSSHD(t, SSHDOptions{SessionCA: sessionCA.PublicKey(), HostCert: true, HostCASigner: hostCA})
	c := NewClient(t)
	userCert(t, sessionCA, c, "root", "host-cert-test")
	c.TrustHostCA(knownHostsPattern(d.Addr), hostCA.PublicKey())
	res := c.Run(context.Background(), "ssh", "-p", strconv.Itoa(d.Port), "root@127.0.0.1", "echo ok")
	if res.Stdout != "ok\n" || res.ExitCode != 0 {
		t.Fatalf("stdout %q exit %d stderr %q", res.Stdout, res.ExitCode, res.Stderr)
	}
}

func TestFileTransferClients(t *testing.T) {
	w := newSSHWorld(t)
	w.client.Extra = []string{"-o", "Port=" + strconv.Itoa(w.sshd.Port)}
	src := filepath.Join(t.TempDir(), "src file.txt") // a space tests the quoting
	mustWrite(t, src, []byte("payload\n"), 0o644)
	remote := t.TempDir() // sshd runs on this machine, so the remote side is local too
	target := "root@127.0.0.1:" + remote
	batch := filepath.Join(t.TempDir(), "batch")
	mustWrite(t, batch, []byte(fmt.Sprintf("put %q %s/sftp.txt\n", src, remote)), 0o644)
	cases := []struct {
		name, file string
		args       []string
	}{
		{"scp", "scp.txt", []string{src, target + "/scp.txt"}},
		{"rsync", "rsync.txt", []string{src, target + "/rsync.txt"}},
		{"sftp", "sftp.txt", []string{"-b", batch, "root@127.0.0.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := w.client.Run(context.Background(), tc.name, tc.args...)
			assertFile(t, filepath.Join(remote, tc.file), res)
		})
	}
}

func assertFile(t *testing.T, path string, res Result) {
	t.Helper()
	b, err := os.ReadFile(path)
	if res.ExitCode != 0 || err != nil || string(b) != "payload\n" {
		t.Fatalf("exit %d stderr %q; %s holds %q (%v), want \"payload\\n\"", res.ExitCode, res.Stderr, path, b, err)
	}
}

func TestPTYResizeOverSSH(t *testing.T) {
	w := newSSHWorld(t)
	cmd := w.client.Command(context.Background(), "ssh", "-tt", "-p", strconv.Itoa(w.sshd.Port), "root@127.0.0.1",
		"PS1='pty> ' exec /bin/sh -i")
	term := StartPTY(t, cmd, 80, 24)
	term.Expect(t, "pty> ", 20*time.Second)
	term.Send("stty size\r")
	term.Expect(t, "24 80", 20*time.Second)
	term.Resize(100, 40)
	term.SendUntil(t, "stty size\r", "40 100", 20*time.Second)
	term.Send("exit 7\r")
	if code := term.Wait(); code != 7 {
		t.Fatalf("exit code %d, want 7; output:\n%s", code, term.Output())
	}
}

const testPage = `<!doctype html><title>Gatehouse testenv</title><p id="msg">hello from loopback</p>`

func servePage(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, testPage) }

func TestBrowserReadsLoopbackPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(servePage))
	defer srv.Close()
	ctx := NewBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || title != "Gatehouse testenv" {
		t.Fatalf("title %q err %v", title, err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("msg")))
	if err != nil || text != "hello from loopback" {
		t.Fatalf("text %q err %v", text, err)
	}
	png := filepath.Join(t.TempDir(), "page.png")
	Screenshot(t, ctx, png)
	if b, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG (err %v)", err)
	}
}

func TestBrowserTrustsOnlyTheTestCert(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(servePage))
	defer srv.Close()
	t.Run("trusted", func(t *testing.T) {
		ctx := NewBrowserWith(t, BrowserOptions{TrustCerts: []*x509.Certificate{srv.Certificate()}})
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
			t.Fatal(err)
		}
		if title, err := chromedp.Run(ctx, chromedp.Title()); err != nil || title != "Gatehouse testenv" {
			t.Fatalf("title %q err %v", title, err)
		}
	})
	t.Run("not trusted", func(t *testing.T) {
		ctx := NewBrowser(t)
		err := chromedp.Do(ctx, chromedp.Navigate(srv.URL))
		if err == nil || !strings.Contains(err.Error(), "ERR_CERT") {
			t.Fatalf("navigating to a self-signed site: err %v, want a certificate error", err)
		}
	})
}

// TestRequire runs this test binary again with and without CI=true and a
// component that is missing: CI must fail naming the install step, a
// developer machine must skip.
func TestRequire(t *testing.T) {
	if os.Getenv("GATEHOUSE_TESTENV_HELPER") == "1" {
		Require(t, "the frobnicator", "apt-get install frobnicator", false)
		return
	}
	for _, ci := range []string{"true", ""} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRequire$", "-test.v")
		cmd.Env = append(os.Environ(), "GATEHOUSE_TESTENV_HELPER=1", "CI="+ci)
		out, err := cmd.CombinedOutput()
		failed := err != nil
		if failed != (ci == "true") || !strings.Contains(string(out), "apt-get install frobnicator") {
			t.Errorf("CI=%q: failed=%v, output:\n%s", ci, failed, out)
		}
		if ci == "" && !strings.Contains(string(out), "--- SKIP") {
			t.Errorf("CI unset: the test was not skipped:\n%s", out)
		}
	}
}

func TestKnownHostsPattern(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:2222": "[127.0.0.1]:2222",
		"127.0.0.1:22":   "127.0.0.1",
		"db-1":           "db-1",
		"[::1]:2222":     "[::1]:2222",
	} {
		if got := knownHostsPattern(in); got != want {
			t.Errorf("knownHostsPattern(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKillEndsSessions(t *testing.T) {
	w := newSSHWorld(t)
	cmd := w.client.Command(context.Background(), "ssh", "-p", strconv.Itoa(w.sshd.Port), "root@127.0.0.1",
		"echo started; exec sleep 600")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "started\n" {
		t.Fatalf("first line %q err %v", line, err)
	}
	w.sshd.Kill()
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 255 {
		t.Fatalf("ssh exit code %d after the target died, want 255", code)
	}
	if c, err := net.Dial("tcp", w.sshd.Addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Kill", w.sshd.Addr)
	}
}
