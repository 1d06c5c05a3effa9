package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// plainKey writes a plain ed25519 key pair (no certificate) and returns the
// private key file and the key's SHA256 fingerprint.
func plainKey(t *testing.T) (string, string) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "plain")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pub, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, ssh.FingerprintSHA256(k)
}

// plainSSH is a real `ssh` logging in with a plain key (browser approval).
type plainSSH struct {
	c         *exec.Cmd
	out, errb *syncBuffer
	done      chan struct{}
	err       error
}

var approvalRE = regexp.MustCompile(`open (http\S+)\s+and check that it shows the code (\S+)\.`)

// startPlainSSH runs ssh with keyFile from the source address bind (""
// means the default) as user ("root@db-1") and runs command.
func (iw *idpWorld) startPlainSSH(t *testing.T, keyFile, bind, user, command string, extra ...string) *plainSSH {
	t.Helper()
	args := []string{"-F", "none", "-i", keyFile, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + iw.kh,
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=no", "-o", "PreferredAuthentications=publickey,keyboard-interactive",
		"-p", iw.port}
	if bind != "" {
		args = append(args, "-b", bind)
	}
	args = append(append(args, extra...), user+"@127.0.0.1", command)
	p := &plainSSH{c: exec.Command("ssh", args...), out: &syncBuffer{}, errb: &syncBuffer{}, done: make(chan struct{})}
	p.c.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	p.c.Stdout, p.c.Stderr = p.out, p.errb
	p.c.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal: nothing to type into
	if err := p.c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.c.Wait(); close(p.done) }()
	t.Cleanup(func() { p.c.Process.Kill(); <-p.done })
	return p
}

// approval waits for the approval URL and code on ssh's stderr.
func (p *plainSSH) approval(t *testing.T) (url, code string) {
	t.Helper()
	var m []string
	waitFor(t, "the approval URL on ssh's stderr", func() bool {
		m = approvalRE.FindStringSubmatch(p.errb.String())
		return m != nil || p.exited()
	})
	if m == nil {
		t.Fatalf("ssh exited without an approval URL: %v %q", p.err, p.errb.String())
	}
	return m[1], m[2]
}

func (p *plainSSH) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for ssh to exit (generously) and returns its error.
func (p *plainSSH) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(90 * time.Second):
		t.Fatalf("ssh did not exit; stderr %q", p.errb.String())
		return nil
	}
}

// approveInBrowser opens the approval page and approves it.
func (iw *idpWorld) approveInBrowser(t *testing.T, url, code string) {
	t.Helper()
	b := iw.browser
	testenv.Step(t, b, "open the approval page", chromedp.Navigate(url), chromedp.WaitVisible("#approval-code"))
	if shown, _ := chromedp.Run(b, chromedp.Text("#approval-code")); shown != code {
		t.Fatalf("page shows code %q, terminal %q", shown, code)
	}
	testenv.Step(t, b, "approve", chromedp.Click("#approve"), chromedp.WaitVisible("#approved"))
}

// loggedInIdPWorld is an IdP world whose browser is logged in (TOTP
// enrolled); it returns the TOTP secret.
func loggedInIdPWorld(t *testing.T, sshExtra string) (*idpWorld, string) {
	iw := newIdPWorldWith(t, sshExtra)
	secret := iw.browserLogin(t, "")
	testenv.Step(t, iw.browser, "recovery codes shown", chromedp.WaitVisible("#recovery-codes"))
	return iw, secret
}

// pageText returns the text of the element sel on the current page.
func pageText(t *testing.T, b context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(b, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// TestApprovalBoundToWhatWasAsked is the phishing attempt of issue 9: an
// attacker's pending request (another key, another source address, another
// target) is not approved by the victim's approval of their own request, and
// its approval page shows the attacker's request; an approval is reused only
// for the same key, address and login@target; a code whose connection closed
// cannot be approved.
func TestApprovalBoundToWhatWasAsked(t *testing.T) {
	iw, _ := loggedInIdPWorld(t, "")
	b := iw.browser
	victimKey, _ := plainKey(t)
	attackerKey, attackerFP := plainKey(t)

	attacker := iw.startPlainSSH(t, attackerKey, "127.0.0.2", "root@dead-1", "echo attacker-ran")
	attackerURL, attackerCode := attacker.approval(t)

	victim := iw.startPlainSSH(t, victimKey, "", "root@db-1", "echo victim-ok")
	url, code := victim.approval(t)
	iw.approveInBrowser(t, url, code)
	if err := victim.wait(t); err != nil || victim.out.String() != "victim-ok\n" {
		t.Fatalf("victim: %v %q %q", err, victim.out.String(), victim.errb.String())
	}

	// The attacker is still waiting: the victim's approval did not cover them.
	if attacker.exited() || strings.Contains(attacker.out.String(), "attacker-ran") {
		t.Fatalf("attacker's login went through: %q %q", attacker.out.String(), attacker.errb.String())
	}
	if _, err := iw.app.Approvals.Lookup(attackerCode); err != nil {
		t.Fatalf("attacker's code is no longer pending: %v", err)
	}
	// The page for the attacker's code shows the attacker's request.
	testenv.Step(t, b, "open the attacker's approval page", chromedp.Navigate(attackerURL), chromedp.WaitVisible("#approval-code"))
	for sel, want := range map[string]string{"#approval-asked": "root@dead-1", "#approval-ip": "127.0.0.2",
		"#approval-key": attackerFP} {
		if got := pageText(t, b, sel); got != want {
			t.Fatalf("%s shows %q, want %q", sel, got, want)
		}
	}
	if got := pageText(t, b, "#approval-version"); !strings.HasPrefix(got, "SSH-2.0-OpenSSH_") {
		t.Fatalf("client version shown: %q", got)
	}
	if got := pageText(t, b, "#approve"); got != "Approve root@dead-1" {
		t.Fatalf("approve button: %q", got)
	}

	// The attacker gives up: the code dies with the connection.
	attacker.c.Process.Kill()
	attacker.wait(t)
	waitFor(t, "the attacker's code to die", func() bool {
		_, err := iw.app.Approvals.Lookup(attackerCode)
		return err != nil
	})
	testenv.Step(t, b, "reload the dead code's page", chromedp.Navigate(attackerURL), chromedp.WaitVisible("#error"))
	if got := pageText(t, b, "#error"); got != "the ssh connection that asked for this code has closed; nothing was approved" {
		t.Fatalf("dead code page: %q", got)
	}

	// Reuse covers only the same key, source address and login@target.
	again := iw.startPlainSSH(t, victimKey, "", "root@db-1", "echo reused")
	if err := again.wait(t); err != nil || again.out.String() != "reused\n" || strings.Contains(again.errb.String(), "open http") {
		t.Fatalf("reuse for the same request: %v %q %q", err, again.out.String(), again.errb.String())
	}
	for _, tc := range []struct{ name, bind, user string }{
		{"another source address", "127.0.0.2", "root@db-1"},
		{"another target", "", "root@dead-1"},
	} {
		p := iw.startPlainSSH(t, victimKey, tc.bind, tc.user, "echo should-not-run")
		if _, code := p.approval(t); code == "" || strings.Contains(p.out.String(), "should-not-run") {
			t.Fatalf("%s: not asked for a new approval: %q", tc.name, p.out.String())
		}
		p.c.Process.Kill()
		p.wait(t)
	}
}

// TestApprovalOutlivesHandshakeDeadlineAndEndsOnShutdown: a login waiting
// for the browser is not cut by the handshake deadline, and a gateway
// shutdown ends the wait at once (Ctrl-C on `gatehouse demo` used to hang).
func TestApprovalOutlivesHandshakeDeadlineAndEndsOnShutdown(t *testing.T) {
	const handshake = 2 * time.Second
	iw, _ := loggedInIdPWorld(t, "  handshake_timeout: 2s\n")
	key, _ := plainKey(t)
	p := iw.startPlainSSH(t, key, "", "root@db-1", "echo after-the-deadline")
	url, code := p.approval(t)
	time.Sleep(3 * handshake) // let the handshake deadline pass (a wait, not an assertion on speed)
	if p.exited() {
		t.Fatalf("the handshake deadline cut the pending login: %q", p.errb.String())
	}
	iw.approveInBrowser(t, url, code)
	if err := p.wait(t); err != nil || p.out.String() != "after-the-deadline\n" {
		t.Fatalf("approved after the deadline: %v %q %q", err, p.out.String(), p.errb.String())
	}

	// Another login waits for approval; the gateway shuts down.
	other, _ := plainKey(t)
	p = iw.startPlainSSH(t, other, "", "root@db-1", "echo never")
	_, code = p.approval(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		done <- iw.app.Gateway.Shutdown(ctx)
	}()
	var err error
	waitFor(t, "Shutdown to return with an approval pending", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := p.wait(t); err == nil || !strings.Contains(p.errb.String(), "gatehouse: the gateway is shutting down; run ssh again in a moment") {
		t.Fatalf("pending ssh at shutdown: %v %q", err, p.errb.String())
	}
	if _, err := iw.app.Approvals.Lookup(code); err == nil {
		t.Fatal("the pending code can still be approved after shutdown")
	}
}

// TestApprovalAsksTOTPForSessionMFARoles: a role with require_session_mfa
// gets no session from a browser approval without a fresh TOTP code.
func TestApprovalAsksTOTPForSessionMFARoles(t *testing.T) {
	iw, secret := loggedInIdPWorld(t, "")
	b := iw.browser
	key, _ := plainKey(t)
	p := iw.startPlainSSH(t, key, "", "root@mfa-1", "echo mfa-approved")
	url, _ := p.approval(t)
	testenv.Step(t, b, "open the approval page", chromedp.Navigate(url), chromedp.WaitVisible("#totp"))
	testenv.Step(t, b, "approve without a code", chromedp.Click("#approve"), chromedp.WaitVisible("#error"))
	if got := pageText(t, b, "#error"); got != "no code entered; type the 6-digit code from your authenticator" {
		t.Fatalf("approval without TOTP: %q", got)
	}
	if p.exited() {
		t.Fatalf("ssh ended: %q", p.errb.String())
	}
	// The browser login used this time step; the next one is accepted once.
	code, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	testenv.Step(t, b, "approve with a code", chromedp.SendKeys("#totp", code), chromedp.Click("#approve"),
		chromedp.WaitVisible("#approved"))
	if err := p.wait(t); err != nil || p.out.String() != "mfa-approved\n" {
		t.Fatalf("approved with TOTP: %v %q %q", err, p.out.String(), p.errb.String())
	}
	// Within the reuse window the same request still needs a fresh code, now
	// at the ssh prompt; this ssh has no terminal, so it answers nothing.
	p = iw.startPlainSSH(t, key, "", "root@mfa-1", "echo should-not-run")
	if err := p.wait(t); err == nil || !strings.Contains(p.errb.String(), "gatehouse: no TOTP code entered") ||
		strings.Contains(p.errb.String(), "open http") {
		t.Fatalf("reused approval without a fresh code: %v %q %q", err, p.out.String(), p.errb.String())
	}
}

// TestLockedUserGetsNoApprovalCode: a lock refuses; it never opens another
// way in. Neither a locked certificate holder (whose ssh falls back to the
// plain key) nor a plain key approved earlier for a now locked user gets an
// approval URL.
func TestLockedUserGetsNoApprovalCode(t *testing.T) {
	iw, _ := loggedInIdPWorld(t, "")
	ctx := context.Background()
	alice := iw.newUser("alice", time.Hour)
	if err := iw.app.Locks.Lock(ctx, "alice", "incident 42", "admin", 0); err != nil {
		t.Fatal(err)
	}
	p := iw.startPlainSSH(t, alice.key, "", "root@db-1", "echo should-not-run", "-o", "CertificateFile="+alice.key+"-cert.pub")
	if err := p.wait(t); err == nil || !strings.Contains(p.errb.String(), "gatehouse: your access is locked (incident 42); contact an administrator") ||
		strings.Contains(p.errb.String(), "open http") {
		t.Fatalf("locked certificate holder: %v %q", err, p.errb.String())
	}

	key, _ := plainKey(t)
	p = iw.startPlainSSH(t, key, "", "root@db-1", "echo approved-before-the-lock")
	url, code := p.approval(t)
	iw.approveInBrowser(t, url, code)
	if err := p.wait(t); err != nil {
		t.Fatalf("approved: %v %q", err, p.errb.String())
	}
	if err := iw.app.Locks.Lock(ctx, testenv.OIDCUser, "left the company", "admin", 0); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"root@db-1", "root@dead-1"} { // within the window, and a new request
		p = iw.startPlainSSH(t, key, "", user, "echo should-not-run")
		if err := p.wait(t); err == nil || !strings.Contains(p.errb.String(), "gatehouse: your access is locked (left the company)") ||
			strings.Contains(p.errb.String(), "open http") {
			t.Fatalf("%s with the locked user's key: %v %q", user, err, p.errb.String())
		}
	}
}

// floodLogin is one anonymous keyboard-interactive login from src: it waits
// for the approval instruction (or a refusal), holds the connection a
// moment, then gives up. It reports whether it got a code and whether it was
// refused for the approval cap.
func floodLogin(addr, src string, signer ssh.Signer) (gotCode, capped bool) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return false, false
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	var banner strings.Builder
	cfg := &ssh.ClientConfig{User: "root@db-1", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
		BannerCallback: func(m string) error { banner.WriteString(m); return nil },
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer), ssh.KeyboardInteractive(
			func(name, instr string, qs []string, echos []bool) ([]string, error) {
				if strings.Contains(instr, "/approve/") {
					gotCode = true
					time.Sleep(200 * time.Millisecond)
				}
				return nil, errors.New("flood client gives up")
			})}}
	if c, _, _, err := ssh.NewClientConn(nc, addr, cfg); err == nil {
		c.Close()
	}
	return gotCode, strings.Contains(banner.String(), "waiting for approval")
}

// TestApprovalFloodDoesNotStopARealUser: 1,000 anonymous logins from
// loopback addresses do not stop a real user's approval, and the codes they
// got die with their connections.
func TestApprovalFloodDoesNotStopARealUser(t *testing.T) {
	iw, _ := loggedInIdPWorld(t, "")
	const total, workers = 1000, 40
	var started, codes, capped atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	deadline := time.Now().Add(4 * time.Minute) // bounded in time as well as count
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			priv, _ := newKeyPair(t)
			signer, _ := ssh.NewSignerFromKey(priv)
			src := []string{"127.0.0.2", "127.0.0.3"}[w%2]
			for started.Add(1) <= total && time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				got, c := floodLogin(iw.app.SSHAddr(), src, signer)
				if got {
					codes.Add(1)
				}
				if c {
					capped.Add(1)
				}
			}
		}(w)
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	waitFor(t, "the flood to reach the approval cap", func() bool { return capped.Load() > 0 })

	key, _ := plainKey(t)
	p := iw.startPlainSSH(t, key, "", "root@db-1", "echo real-user-ok")
	url, code := p.approval(t)
	iw.approveInBrowser(t, url, code)
	if err := p.wait(t); err != nil || p.out.String() != "real-user-ok\n" {
		t.Fatalf("real user during the flood: %v %q %q", err, p.out.String(), p.errb.String())
	}
	wg.Wait()
	t.Logf("flood: %d logins, %d got a code, %d refused by the cap", min(started.Load(), total), codes.Load(), capped.Load())
	if n := iw.app.Approvals.Pending(); n > 20 {
		t.Fatalf("%d codes pending during the flood", n)
	}
	waitFor(t, "the flood's codes to die with their connections", func() bool { return iw.app.Approvals.Pending() == 0 })
}

// TestUnattendedSSHDoesNotLockTOTP: an ssh with nobody at the keyboard sends
// empty answers to the TOTP prompt; they are not guesses and do not lock the
// user's TOTP.
func TestUnattendedSSHDoesNotLockTOTP(t *testing.T) {
	iw := newIdPWorld(t)
	secret := enrolDave(t, iw)
	dave := iw.newUser("dave", time.Hour)
	for i := 0; i < 4; i++ {
		c := dave.cmd(context.Background(), "ssh", "-o", "BatchMode=no", "-p", iw.port, "root@db-1@127.0.0.1", "echo should-not-run")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		c.Stdin = nil
		out, err := c.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "gatehouse: no TOTP code entered") {
			t.Fatalf("unattended ssh %d: %v %q", i, err, out)
		}
	}
	code, _ := totp.GenerateCode(secret, time.Now())
	if err := iw.app.TOTP.Verify(context.Background(), "dave", code); err != nil {
		t.Fatalf("the right code after unattended logins: %v", err)
	}
}

// enrolDave enrols dave (bound to a role with require_session_mfa) in TOTP
// and returns the secret.
func enrolDave(t *testing.T, iw *idpWorld) string {
	t.Helper()
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
	return en.Secret
}

// TestFailedLoginFloodIsBoundedInAuditLog: 300 refused logins with a 30 KB
// user name add a bounded amount to the audit log: the strings are capped,
// auth.failure events are rate-limited per source, and one summary event
// counts the ones not written.
func TestFailedLoginFloodIsBoundedInAuditLog(t *testing.T) {
	w := newWorldWith(t, "", opsConfig)
	ctx := context.Background()
	dbFiles := func() (n int64) {
		for _, f := range []string{"gatehouse.db", "gatehouse.db-wal"} {
			if st, err := os.Stat(filepath.Join(w.dir, "data", f)); err == nil {
				n += st.Size()
			}
		}
		return n
	}
	before, start := dbFiles(), time.Now()
	priv, _ := newKeyPair(t)
	signer, _ := ssh.NewSignerFromKey(priv)
	long := strings.Repeat("a", 30000) + "@db-1"
	const logins = 300
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < logins/10; j++ {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 10 * time.Second}
				nc, err := d.Dial("tcp", w.app.SSHAddr())
				if err != nil {
					continue
				}
				nc.SetDeadline(time.Now().Add(30 * time.Second))
				_, _, _, err = ssh.NewClientConn(nc, w.app.SSHAddr(), &ssh.ClientConfig{User: long,
					HostKeyCallback: ssh.InsecureIgnoreHostKey(), Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}})
				if err != nil && strings.Contains(err.Error(), "unable to authenticate") {
					refused.Add(1)
				}
				nc.Close()
			}
		}()
	}
	wg.Wait()
	if refused.Load() != logins {
		t.Fatalf("%d of %d logins refused", refused.Load(), logins)
	}
	var evs []audit.StoredEvent
	suppressed := 0
	waitForLong(t, "the summary of the rate-limited events", 60*time.Second, func() bool {
		evs, _ = w.app.Audit.Query(ctx, audit.Filter{Type: audit.EventAuthFailure})
		suppressed = 0
		for _, ev := range evs {
			suppressed += int(detailNumber(ev, "suppressed"))
		}
		return len(evs) > 0 && suppressed+len(evs)-summaries(evs) == logins
	})
	written, size := len(evs)-summaries(evs), 0
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		size += len(b)
	}
	// At most 10 events per source and 10 s window (a loaded machine may
	// spread the logins over several windows), each under 2 KB.
	windows := int(time.Since(start)/(10*time.Second)) + 2
	if written > 10*windows || size > (written+summaries(evs))*2048 {
		t.Fatalf("%d auth.failure events written (%d bytes) for %d refused logins over %d windows", written, size, logins, windows)
	}
	for _, ev := range evs {
		if u := detailString(ev, "ssh_user"); len(u) > 300 || len(ev.Reason) > 600 {
			t.Fatalf("uncapped event: user %d bytes, reason %d bytes", len(u), len(ev.Reason))
		}
	}
	if grew := dbFiles() - before; grew > 2<<20 {
		t.Fatalf("the database grew by %d bytes", grew)
	}
	// The metric still counts every refused login, summarised or not.
	failures := 0.0
	for name, v := range scrape(t, w) {
		if strings.HasPrefix(name, "gatehouse_auth_failures_total{") {
			failures += v
		}
	}
	if failures != logins {
		t.Fatalf("gatehouse_auth_failures_total sums to %v, want %d", failures, logins)
	}
	t.Logf("%d events written (%d bytes), %d summarised; database grew %d bytes", written, size, suppressed, dbFiles()-before)
}

func summaries(evs []audit.StoredEvent) (n int) {
	for _, ev := range evs {
		if detailNumber(ev, "suppressed") > 0 {
			n++
		}
	}
	return n
}

// waitForLong is waitFor with a longer wait.
func waitForLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func eventDetails(ev audit.StoredEvent) map[string]any {
	var d map[string]any
	if json.Unmarshal([]byte(ev.DetailsJSON), &d) != nil || d == nil {
		d = ev.Details
	}
	return d
}

func detailNumber(ev audit.StoredEvent, k string) float64 {
	switch v := eventDetails(ev)[k].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	case int64:
		return float64(v)
	}
	return 0
}

func detailString(ev audit.StoredEvent, k string) string {
	s, _ := eventDetails(ev)[k].(string)
	return s
}

// TestWebRefusalsCapClientStrings: what an unauthenticated browser chooses
// (user agent, a refused redirect URI) is capped in the audit log.
func TestWebRefusalsCapClientStrings(t *testing.T) {
	w := newWorld(t, "")
	u := "https://" + w.app.WebAddr() + "/cli/login?state=x&redirect_uri=" +
		url.QueryEscape("https://evil.example/"+strings.Repeat("p", 100000))
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("User-Agent", strings.Repeat("u", 30000))
	// The gateway's self-signed web certificate is not what this test is about.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("foreign redirect: status %d", resp.StatusCode)
	}
	evs, err := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventLogin})
	if err != nil || len(evs) != 1 || evs[0].Reason != "refused redirect" {
		t.Fatalf("events %v %v", evs, err)
	}
	if d := detailString(evs[0], "redirect_uri"); len(d) > 600 || !strings.HasSuffix(d, "bytes cut]") {
		t.Fatalf("redirect_uri detail %d bytes", len(d))
	}
	if v := evs[0].ClientVersion; len(v) > 300 || !strings.HasSuffix(v, "bytes cut]") {
		t.Fatalf("user agent %d bytes", len(v))
	}
}
