package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// TestLockedUserHasNoWebPowers locks a signed-in admin and checks, in a real
// browser against the real IdP, that the web front door enforces the lock as
// the gateway does: the open browser session stops working, a fresh login is
// refused with the reason, `gatehouse login` gets no certificate, and the
// locked admin cannot reach the page that would unlock them.
func TestLockedUserHasNoWebPowers(t *testing.T) {
	iw := newIdPWorld(t)
	b := iw.browser
	iw.browserLogin(t, "")
	testenv.Step(t, b, "continue", chromedp.Click("#continue"), chromedp.WaitVisible("main h1"))
	testenv.Step(t, b, "admin users page before the lock", chromedp.Navigate(iw.webURL+"/admin/users"),
		chromedp.WaitVisible("main h1"))
	if page, _ := chromedp.Run(b, chromedp.Text("main")); !strings.Contains(page, testenv.OIDCUser) {
		t.Fatalf("users page before the lock: %q", page)
	}

	ctx := context.Background()
	if err := iw.app.Locks.Lock(ctx, testenv.OIDCUser, "under investigation", "test", time.Hour); err != nil {
		t.Fatal(err)
	}

	// The open session no longer counts: the admin page sends the browser to
	// log in, and the IdP login ends on the lock message.
	testenv.Step(t, b, "admin users page after the lock", chromedp.Navigate(iw.webURL+"/admin/users"),
		chromedp.WaitVisible("#username"))
	testenv.Step(t, b, "log in at the IdP again", chromedp.SendKeys("#username", testenv.OIDCUser),
		chromedp.SendKeys("#password", testenv.OIDCPassword), chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible("#error"))
	msg, _ := chromedp.Run(b, chromedp.Text("#error"))
	if want := "Your access is locked (under investigation). Contact an administrator."; strings.TrimSpace(msg) != want {
		t.Fatalf("login while locked shows %q, want %q", msg, want)
	}
	if _, locked := iw.app.Locks.Locked(ctx, testenv.OIDCUser); !locked {
		t.Fatal("the locked admin lifted their own lock")
	}

	// gatehouse login cannot mint a certificate for a locked user: the
	// browser step ends on the lock message and the CLI gets nothing.
	bin := gatehouseBinary(t)
	home := t.TempDir()
	cmd := exec.Command(bin, "login", "--gateway", iw.webURL, "--no-browser")
	cmd.Env = append(os.Environ(), "GATEHOUSE_HOME="+home, "SSH_AUTH_SOCK=")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 4096)
	var got strings.Builder
	var loginURL string
	for loginURL == "" {
		n, err := out.Read(buf)
		got.Write(buf[:n])
		for _, l := range strings.Split(got.String(), "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "http") && strings.Contains(got.String(), l+"\n") {
				loginURL = l
			}
		}
		if err != nil {
			t.Fatalf("gatehouse login printed no URL: %q", got.String())
		}
	}
	testenv.Step(t, b, "open the CLI login URL", chromedp.Navigate(loginURL), chromedp.WaitVisible("#username"))
	testenv.Step(t, b, "log in at the IdP for the CLI", chromedp.SendKeys("#username", testenv.OIDCUser),
		chromedp.SendKeys("#password", testenv.OIDCPassword), chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible("#error"))
	if _, err := os.Stat(home + "/id_ed25519-cert.pub"); err == nil {
		t.Fatal("gatehouse login wrote a certificate for a locked user")
	}
	evs, _ := iw.app.Audit.Query(ctx, audit.Filter{Type: audit.EventLogin, User: testenv.OIDCUser})
	refused := 0
	for _, ev := range evs {
		if ev.Reason == "refused: user is locked (under investigation)" {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("want 2 audited refused logins, got %d in %+v", refused, evs)
	}
}
