package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// secondWebInstance starts a second instance of iw on its database with its
// own web listener (the public URL stays the first one's, as behind a load
// balancer) and returns it with its web base URL. The browser's login
// cookie (host 127.0.0.1) goes to both, and the web session it names is a
// row both read.
func secondWebInstance(t *testing.T, iw *idpWorld) (*idpWorld, string) {
	t.Helper()
	portA := strings.TrimPrefix(iw.webURL, "http://127.0.0.1:")
	portB := freePort(t)
	wb := secondInstance(t, iw.world, func(c string) string {
		return strings.Replace(c, `listen: "127.0.0.1:`+portA+`"`, `listen: "127.0.0.1:`+portB+`"`, 1)
	})
	ib := *iw
	ib.world = wb
	return &ib, "http://127.0.0.1:" + portB
}

// TestInstancesShareApprovals: a plain ssh waits for approval on instance A;
// the user approves in Chromium on instance B; A's waiting connection is
// released (A polls the shared database) and runs the command. An
// attacker's code pending on A at the same time is not released by the
// victim's approval on B, B's page for it shows the attacker's request, and
// the approval is reused for the same key, address and target on B.
func TestInstancesShareApprovals(t *testing.T) {
	iw, _ := loggedInIdPWorld(t, "")
	ib, webB := secondWebInstance(t, iw)
	victimKey, _ := plainKey(t)
	attackerKey, attackerFP := plainKey(t)

	attacker := iw.startPlainSSH(t, attackerKey, "127.0.0.2", "root@dead-1", "echo attacker-ran")
	attackerURL, attackerCode := attacker.approval(t)
	victim := iw.startPlainSSH(t, victimKey, "", "root@db-1", "echo victim-ok")
	url, code := victim.approval(t)
	if !strings.HasPrefix(url, iw.webURL+"/approve/") {
		t.Fatalf("approval URL %q", url)
	}
	onB := webB + strings.TrimPrefix(url, iw.webURL)
	iw.approveInBrowser(t, onB, code)
	approved := time.Now()
	if err := victim.wait(t); err != nil || victim.out.String() != "victim-ok\n" {
		t.Fatalf("victim on A after the approval on B: %v %q %q", err, victim.out.String(), victim.errb.String())
	}
	t.Logf("the approval on B released the ssh waiting on A %v after B confirmed it", time.Since(approved).Round(10*time.Millisecond))

	// The attacker's code on A still waits, and B shows the attacker's request.
	if attacker.exited() || strings.Contains(attacker.out.String(), "attacker-ran") {
		t.Fatalf("attacker's login went through: %q %q", attacker.out.String(), attacker.errb.String())
	}
	if p, err := ib.app.Approvals.Lookup(attackerCode); err != nil || p.KeyFingerprint != attackerFP {
		t.Fatalf("attacker's code as B sees it: %+v %v", p, err)
	}
	b := iw.browser
	testenv.Step(t, b, "open the attacker's code on B", chromedp.Navigate(webB+strings.TrimPrefix(attackerURL, iw.webURL)),
		chromedp.WaitVisible("#approval-code"))
	for sel, want := range map[string]string{"#approval-asked": "root@dead-1", "#approval-ip": "127.0.0.2", "#approval-key": attackerFP} {
		if got := pageText(t, b, sel); got != want {
			t.Fatalf("B's page for A's attacker code: %s shows %q, want %q", sel, got, want)
		}
	}
	attacker.c.Process.Kill()
	attacker.wait(t)
	waitFor(t, "the attacker's code to die on B too", func() bool {
		_, err := ib.app.Approvals.Lookup(attackerCode)
		return err != nil
	})

	// The victim's approval is reused on B for the same key, address and target.
	again := ib.startPlainSSH(t, victimKey, "", "root@db-1", "echo reused-on-b")
	if err := again.wait(t); err != nil || again.out.String() != "reused-on-b\n" || strings.Contains(again.errb.String(), "open http") {
		t.Fatalf("reuse on B: %v %q %q", err, again.out.String(), again.errb.String())
	}
}
