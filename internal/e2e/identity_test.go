package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// screenshotDir is where the browser tests leave pictures of each page: a
// temporary directory, or the directory named by GATEHOUSE_SCREENSHOTS
// (relative to the repository root) when refreshing docs/screenshots:
//
//	GATEHOUSE_SCREENSHOTS=docs/screenshots go test ./internal/e2e -run TestScreenshots
var screenshotDir = func() string {
	if d := os.Getenv("GATEHOUSE_SCREENSHOTS"); d != "" {
		if !filepath.IsAbs(d) {
			d = filepath.Join("..", "..", d)
		}
		return d
	}
	return filepath.Join(os.TempDir(), "gatehouse-screenshots")
}()

// idpWorld is a gateway whose users log in with a real OpenID Provider.
type idpWorld struct {
	*world
	op      *testenv.OIDCProvider
	webURL  string
	browser context.Context
}

func newIdPWorld(t *testing.T) *idpWorld {
	t.Helper()
	return newIdPWorldWith(t, "")
}

// newIdPWorldWith adds sshExtra (indented keys of the gateway's ssh section,
// e.g. "  handshake_timeout: 3s\n") to the configuration.
func newIdPWorldWith(t *testing.T, sshExtra string) *idpWorld {
	t.Helper()
	op := testenv.StartOIDCProvider(t)
	port := freePort(t)
	webURL := "http://127.0.0.1:" + port
	op.RegisterWebClient("gatehouse", "test-client-secret", webURL+"/oidc/callback")
	secretFile := filepath.Join(t.TempDir(), "oidc-secret")
	os.WriteFile(secretFile, []byte("test-client-secret\n"), 0o600)
	extra := sshExtra + fmt.Sprintf(`web:
  listen: "127.0.0.1:%s"
  public_url: %q
  insecure_http: true
oidc:
  issuer: %q
  client_id: gatehouse
  client_secret_file: %q
`, port, webURL, op.Issuer, secretFile)
	w := newWorldWith(t, "", extra)
	return &idpWorld{world: w, op: op, webURL: webURL, browser: testenv.NewBrowser(t)}
}

// browserLogin logs the browser in through the IdP and the TOTP step
// (enrolling on first use) and returns the TOTP secret.
func (iw *idpWorld) browserLogin(t *testing.T, secret string) string {
	t.Helper()
	b := iw.browser
	testenv.Step(t, b, "open the gateway login", chromedp.Navigate(iw.webURL+"/login"),
		chromedp.WaitVisible("#username"))
	testenv.Step(t, b, "log in at the IdP", chromedp.SendKeys("#username", testenv.OIDCUser),
		chromedp.SendKeys("#password", testenv.OIDCPassword), chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible("#code"))
	if secret == "" {
		s, err := chromedp.Run(b, chromedp.Text("#secret"))
		if err != nil {
			t.Fatal(err)
		}
		secret = strings.TrimSpace(s)
	}
	code, _ := totp.GenerateCode(secret, time.Now())
	testenv.Step(t, b, "enter the TOTP code", chromedp.SendKeys("#code", code), chromedp.Click("#verify"))
	return secret
}

func TestWebLoginCLILoginAndApprovedPlainSSH(t *testing.T) {
	iw := newIdPWorld(t)
	b := iw.browser
	secret := iw.browserLogin(t, "")
	testenv.Step(t, b, "recovery codes shown", chromedp.WaitVisible("#recovery-codes"))
	testenv.Step(t, b, "continue", chromedp.Click("#continue"), chromedp.WaitVisible("main h1"))
	home, _ := chromedp.Run(b, chromedp.Text("main"))
	if !strings.Contains(home, "Signed in as "+testenv.OIDCUser) || !strings.Contains(home, "dba") {
		t.Fatalf("home page: %q", home)
	}
	_ = secret

	t.Run("gatehouse login then plain ssh", func(t *testing.T) {
		bin := gatehouseBinary(t)
		home := t.TempDir()
		cmd := exec.Command(bin, "login", "--gateway", iw.webURL, "--no-browser")
		cmd.Env = append(os.Environ(), "GATEHOUSE_HOME="+home, "SSH_AUTH_SOCK=")
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var loginURL string
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "http") {
				loginURL = l
				break
			}
		}
		testenv.Step(t, b, "open the CLI login URL", chromedp.Navigate(loginURL))
		var rest strings.Builder
		for sc.Scan() {
			rest.WriteString(sc.Text() + "\n")
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("gatehouse login: %v\n%s", err, rest.String())
		}
		cert := readCert(t, filepath.Join(home, "id_ed25519-cert.pub"))
		id, err := auth.IdentityFromCert(cert)
		life := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second
		if err != nil || cert.KeyId != "gatehouse:"+testenv.OIDCUser || id.Issuer != iw.op.Issuer ||
			id.Subject != testenv.OIDCSubject || id.MFAAt.IsZero() || life < 8*time.Hour || life > 8*time.Hour+2*time.Minute {
			t.Fatalf("certificate: KeyId %q identity %+v life %s err %v", cert.KeyId, id, life, err)
		}
		cfgCmd := exec.Command(bin, "ssh-config")
		cfgCmd.Env = append(os.Environ(), "GATEHOUSE_HOME="+home)
		cfgOut, err := cfgCmd.CombinedOutput()
		if err != nil || !strings.Contains(string(cfgOut), "ProxyJump gatehouse") {
			t.Fatalf("ssh-config: %v\n%s", err, cfgOut)
		}
		stCmd := exec.Command(bin, "status")
		stCmd.Env = append(os.Environ(), "GATEHOUSE_HOME="+home)
		if st, err := stCmd.CombinedOutput(); err != nil || !strings.Contains(string(st), "User:       "+testenv.OIDCUser) ||
			!strings.Contains(string(st), "Roles:      admins, dba") || !strings.Contains(string(st), ", valid until") {
			t.Fatalf("status: %v\n%s", err, st)
		}
		// known_hosts trusts the host CA for the gateway and the targets only, never "*".
		_, gwPort, _ := net.SplitHostPort(iw.app.SSHAddr())
		if kh, _ := os.ReadFile(filepath.Join(home, "known_hosts")); !strings.HasPrefix(string(kh), "@cert-authority 127.0.0.1,[127.0.0.1]:"+gwPort+",db-1,") ||
			strings.Contains(string(kh), "*") {
			t.Fatalf("known_hosts written by gatehouse login: %q", kh)
		}
		sshCfg := filepath.Join(home, "ssh_config")
		os.WriteFile(sshCfg, append(cfgOut, []byte("Host *\n  BatchMode yes\n")...), 0o644)
		ssh := exec.Command("ssh", "-F", sshCfg, "db-1", "echo via-gatehouse-login")
		ssh.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
		got, err := ssh.CombinedOutput()
		if err != nil || string(got) != "via-gatehouse-login\n" {
			t.Fatalf("plain ssh db-1: %v %q", err, got)
		}
		evs, _ := iw.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventCertIssued, User: testenv.OIDCUser})
		if len(evs) != 1 || evs[0].CertSerial != cert.Serial {
			t.Fatalf("cert.issued events %+v", evs)
		}
		// The self-service page lists the certificate.
		testenv.Step(t, b, "home", chromedp.Navigate(iw.webURL+"/"), chromedp.WaitVisible("#certs"))
		certs, _ := chromedp.Run(b, chromedp.Text("#certs"))
		if !strings.Contains(certs, fmt.Sprint(cert.Serial)) {
			t.Fatalf("home page certificates: %q", certs)
		}
	})

	t.Run("plain ssh approved in the browser", func(t *testing.T) {
		keyFile := filepath.Join(t.TempDir(), "plain")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyFile).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		run := func() (*exec.Cmd, *syncBuffer, *syncBuffer) {
			c := exec.Command("ssh", "-F", "none", "-i", keyFile, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile="+iw.kh,
				"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=no", "-o", "PreferredAuthentications=publickey,keyboard-interactive",
				"-p", iw.port, "root@db-1@127.0.0.1", "echo approved-ok")
			c.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
			var out, errb syncBuffer
			c.Stdout, c.Stderr = &out, &errb
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			return c, &out, &errb
		}
		c, out, errb := run()
		re := regexp.MustCompile(`open (http\S+)\s+and check that it shows the code (\S+)\.`)
		var m []string
		waitFor(t, "the approval URL on ssh's stderr", func() bool { m = re.FindStringSubmatch(errb.String()); return m != nil })
		testenv.Step(t, b, "open the approval page", chromedp.Navigate(m[1]), chromedp.WaitVisible("#approval-code"))
		shown, _ := chromedp.Run(b, chromedp.Text("#approval-code"))
		if shown != m[2] {
			t.Fatalf("page shows code %q, terminal %q", shown, m[2])
		}
		testenv.Step(t, b, "approve", chromedp.Click("#approve"), chromedp.WaitVisible("#approved"))
		if err := c.Wait(); err != nil || out.String() != "approved-ok\n" {
			t.Fatalf("approved ssh: %v %q %q", err, out.String(), errb.String())
		}
		// The same key again within the approval window: no browser needed.
		c, out, errb = run()
		if err := c.Wait(); err != nil || out.String() != "approved-ok\n" || strings.Contains(errb.String(), "open http") {
			t.Fatalf("reuse: %v %q %q", err, out.String(), errb.String())
		}
	})
}

// syncBuffer is a goroutine-safe bytes buffer for a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestWebSecurityHeadersCSRFAndRedirects(t *testing.T) {
	iw := newIdPWorld(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(iw.webURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	scriptSrc := ""
	for _, d := range strings.Split(csp, ";") {
		if strings.HasPrefix(strings.TrimSpace(d), "script-src") {
			scriptSrc = d
		}
	}
	if !strings.Contains(scriptSrc, "'self'") || strings.Contains(scriptSrc, "unsafe-inline") || strings.Contains(scriptSrc, "'unsafe-eval'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") ||
		resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers %v", resp.Header)
	}
	// State-changing requests without the session's CSRF token are refused.
	for _, path := range []string{"/logout", "/mfa", "/approve/ABCD-EFGH"} {
		resp, err := client.PostForm(iw.webURL+path, url.Values{"code": {"123456"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("POST %s without CSRF: status %d", path, resp.StatusCode)
		}
	}
	// A CLI login that would send the token to a foreign site is refused.
	resp, err = client.Get(iw.webURL + "/cli/login?state=x&redirect_uri=" + url.QueryEscape("https://evil.example/cb"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("foreign redirect: status %d", resp.StatusCode)
	}
	// A callback whose state this browser did not start is refused.
	resp, err = client.Get(iw.webURL + "/oidc/callback?state=forged&code=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged state: status %d", resp.StatusCode)
	}
	evs, _ := iw.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventLogin})
	reasons := ""
	for _, ev := range evs {
		reasons += ev.Reason + ";"
	}
	if !strings.Contains(reasons, "refused redirect") || !strings.Contains(reasons, "state mismatch") {
		t.Fatalf("login refusals not audited: %s", reasons)
	}
}

func TestIdPDownLeavesCertificatesWorking(t *testing.T) {
	iw := newIdPWorld(t)
	iw.op.Stop()
	resp, err := http.Get(iw.webURL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "identity provider cannot be reached") {
		t.Fatalf("login with the IdP down: %d %s", resp.StatusCode, body)
	}
	alice := iw.newUser("alice", time.Hour)
	if r := alice.direct("root", "db-1", "echo still-works"); r.code != 0 || r.stdout != "still-works\n" {
		t.Fatalf("certificate holder: %s", r)
	}
}

func TestSessionMFAAtTheSSHPrompt(t *testing.T) {
	iw := newIdPWorld(t)
	ctx := context.Background()
	tp := iw.app.TOTP
	if err := tp.BindUser(ctx, auth.Identity{User: "dave"}); err != nil {
		t.Fatal(err)
	}
	en, err := tp.BeginEnrol(ctx, "dave")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := totp.GenerateCode(en.Secret, time.Now().Add(-30*time.Second))
	if _, err := tp.ConfirmEnrol(ctx, "dave", first); err != nil {
		t.Fatal(err)
	}
	dave := iw.newUser("dave", time.Hour)
	c := dave.cmd(ctx, "ssh", "-tt", "-o", "BatchMode=no", "-p", iw.port, "root@db-1@127.0.0.1", "echo mfa-ok")
	term := testenv.StartPTY(t, c, 80, 24)
	term.Expect(t, "TOTP code for dave: ", 15*time.Second)
	code, _ := totp.GenerateCode(en.Secret, time.Now())
	term.Send(code + "\r")
	term.Expect(t, "mfa-ok", 15*time.Second)
	term.Wait()
	// A wrong code three times is refused.
	c = dave.cmd(ctx, "ssh", "-tt", "-o", "BatchMode=no", "-p", iw.port, "root@db-1@127.0.0.1", "echo should-not-run")
	term = testenv.StartPTY(t, c, 80, 24)
	// ssh asks again after each refusal until its attempts run out (and the
	// TOTP lockout engages after five wrong codes).
	for i := 1; i < 20 && !strings.Contains(term.Output(), "Permission denied"); i++ {
		waitFor(t, "prompt", func() bool {
			return strings.Count(term.Output(), "TOTP code for dave: ") >= i || strings.Contains(term.Output(), "Permission denied")
		})
		term.Send("000000\r")
	}
	if code := term.Wait(); code == 0 || strings.Contains(term.Output(), "should-not-run") {
		t.Fatalf("wrong codes accepted: %d %q", code, term.Output())
	}
}
