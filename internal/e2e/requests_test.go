package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// jitUser is the demo IdP's other user (the IdP names it after its host);
// the test configuration binds no role to it, so it has no access until a
// request is approved.
const jitUser = "test-user@127.0.0.1"

// loginAs logs browser b in through the IdP as user (enrolling TOTP) and
// passes the recovery codes page.
func (iw *idpWorld) loginAs(t *testing.T, b context.Context, user string) {
	t.Helper()
	testenv.Step(t, b, "open the gateway login as "+user, chromedp.Navigate(iw.webURL+"/login"), chromedp.WaitVisible("#username"))
	testenv.Step(t, b, "log in at the IdP as "+user, chromedp.SendKeys("#username", user),
		chromedp.SendKeys("#password", testenv.OIDCPassword), chromedp.Click(`button[type="submit"]`), chromedp.WaitVisible("#code"))
	s, err := chromedp.Run(b, chromedp.Text("#secret"))
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(strings.TrimSpace(s), time.Now())
	testenv.Step(t, b, "enter the TOTP code", chromedp.SendKeys("#code", code), chromedp.Click("#verify"),
		chromedp.WaitVisible("#recovery-codes"))
	testenv.Step(t, b, "continue", chromedp.Click("#continue"), chromedp.WaitVisible("main h1"))
}

// postFromPage posts to path from the page open in b with the page's CSRF
// token (what a user crafting the request by hand can do) and returns the
// response status and body text.
func postFromPage(t *testing.T, b context.Context, path string) (int, string) {
	t.Helper()
	res, err := chromedp.Run(b, chromedp.Evaluate[string](fmt.Sprintf(`fetch(%q, {method: "POST",
		body: new URLSearchParams({csrf: document.querySelector("input[name=csrf]").value})}).then(function (r) {
		return r.text().then(function (x) { return r.status + " " + x; }); })`, path), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	var status int
	fmt.Sscanf(res, "%d", &status)
	return status, res
}

// TestJITRequestApproveExpire: a user with no access asks with `gatehouse
// request`, is told how at the ssh prompt, cannot approve their own
// request, a request needing two approvals is not granted by one, a
// reviewer approves in Chromium, ssh then works, and when the grant ends
// the live session ends with a line saying why; every step is audited and
// on the requester's page.
func TestJITRequestApproveExpire(t *testing.T) {
	iw := newIdPWorld(t)
	reviewer := iw.browser
	iw.loginAs(t, reviewer, testenv.OIDCUser)
	requester := testenv.NewBrowser(t)
	iw.loginAs(t, requester, jitUser)
	u := iw.newUser(jitUser, time.Hour)

	// Refused at the ssh prompt, with the command that asks for access.
	r := u.direct("root", "db-1", "echo hi")
	wantHint := "gatehouse: access denied: user " + jitUser + " has no roles; request it with: gatehouse request --role oncall --for 1h --reason '...'"
	if r.code == 0 || !strings.Contains(r.stderr, wantHint) {
		t.Fatalf("denied login: %s\nwant the line %q", r, wantHint)
	}

	// gatehouse request prints (and would open) the pre-filled page.
	out, err := exec.Command(gatehouseBinary(t), "request", "--gateway", iw.webURL, "--no-browser",
		"--role", "oncall", "--for", "45s", "--reason", "INC-7 disk full").CombinedOutput()
	m := regexp.MustCompile(`(http\S+/requests\?\S+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("gatehouse request: %v\n%s", err, out)
	}
	testenv.Step(t, requester, "open the request page from the CLI", chromedp.Navigate(string(m[1])), chromedp.WaitVisible("#request-form"))
	if reason, _ := chromedp.Run(requester, chromedp.Value("#reason")); reason != "INC-7 disk full" {
		t.Fatalf("pre-filled reason %q", reason)
	}
	if evs, _ := iw.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventRequestCreated}); len(evs) != 0 {
		t.Fatalf("opening the URL filed a request: %+v", evs)
	}
	testenv.Step(t, requester, "submit the request", chromedp.Click("#request-submit"), chromedp.WaitVisible(`#mine tr[data-state="pending"]`))
	mine, _ := iw.app.Requests.ForUser(context.Background(), iw.app.Policy, jitUser)
	if len(mine) != 1 || mine[0].Role != "oncall" || mine[0].Duration != 45*time.Second {
		t.Fatalf("requests: %+v", mine)
	}
	id := mine[0].ID

	// The requester cannot approve their own request, even by posting the form.
	if status, body := postFromPage(t, requester, "/requests/"+id+"/approve"); status != 403 ||
		!strings.Contains(body, "You cannot approve or deny your own access request.") {
		t.Fatalf("self-approval: %d %s", status, body)
	}

	// A role needing two approvals is not granted by one.
	testenv.Step(t, requester, "request oncall-pair", chromedp.Navigate(iw.webURL+"/requests?role=oncall-pair&for=10m&reason=pair"),
		chromedp.WaitVisible("#request-form"), chromedp.Click("#request-submit"), chromedp.WaitVisible(`#mine tr[data-state="pending"]`))
	var pairID string
	waitFor(t, "the oncall-pair request", func() bool {
		mine, _ = iw.app.Requests.ForUser(context.Background(), iw.app.Policy, jitUser)
		for _, ar := range mine {
			if ar.Role == "oncall-pair" {
				pairID = ar.ID
			}
		}
		return pairID != ""
	})
	testenv.Step(t, reviewer, "reviewer approves oncall-pair once", chromedp.Navigate(iw.webURL+"/requests"),
		chromedp.WaitVisible("#approve-"+pairID), chromedp.Click("#approve-"+pairID))
	waitFor(t, "the first approval", func() bool {
		ar, _ := iw.app.Requests.Get(context.Background(), iw.app.Policy, pairID)
		return len(ar.Approvers) == 1
	})
	waitFor(t, "the reviewer's page to show 1 of 2 approvals", func() bool {
		ctx, cancel := context.WithTimeout(reviewer, 2*time.Second)
		defer cancel()
		row, _ := chromedp.Run(ctx, chromedp.Text("#review-"+pairID))
		return strings.Contains(row, "1 of 2")
	})
	if r := u.direct("root", "mfa-1", "echo pair"); r.code == 0 || !strings.Contains(r.stderr, "request it with: gatehouse request --role oncall-pair") {
		t.Fatalf("one approval of two let ssh in: %s", r)
	}
	if status, body := postFromPage(t, reviewer, "/requests/"+pairID+"/approve"); status != 409 ||
		!strings.Contains(body, "You have already approved this request; it needs another reviewer.") {
		t.Fatalf("second approval by the same reviewer: %d %s", status, body)
	}

	// The reviewer approves oncall in Chromium; ssh works.
	testenv.Step(t, reviewer, "reviewer approves oncall", chromedp.Navigate(iw.webURL+"/requests"),
		chromedp.WaitVisible("#approve-"+id), chromedp.Click("#approve-"+id))
	waitFor(t, "the approval", func() bool {
		ar, _ := iw.app.Requests.Get(context.Background(), iw.app.Policy, id)
		return ar.State == "approved"
	})
	if r := u.direct("root", "db-1", "echo granted"); r.code != 0 || r.stdout != "granted\n" {
		t.Fatalf("ssh after approval: %s", r)
	}

	// A live session that needs the grant ends when it expires.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := u.cmd(ctx, "ssh", "-p", iw.port, "root@db-1@127.0.0.1", "echo started; sleep 300")
	var sout, serr syncBuffer
	c.Stdout, c.Stderr = &sout, &serr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the granted session to start", func() bool { return strings.Contains(sout.String(), "started") })
	// So does a port forward opened under the grant (ssh -N has no session).
	lport := freePort(t)
	fwd := u.cmd(ctx, "ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:"+lport+":"+iw.sshd.Addr,
		"-p", iw.port, "root@db-1@127.0.0.1")
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { fwd.Process.Kill(); fwd.Wait() }()
	var fconn net.Conn
	waitFor(t, "the granted forward's local port", func() bool {
		var err error
		fconn, err = net.Dial("tcp", "127.0.0.1:"+lport)
		return err == nil
	})
	defer fconn.Close()
	fbr := bufio.NewReader(fconn)
	fconn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	if line, err := fbr.ReadString('\n'); err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
		t.Fatalf("through the granted forward: %q %v", line, err)
	}
	fwdClosed := make(chan error, 1)
	go func() { _, err := fbr.ReadString('\n'); fwdClosed <- err }()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatalf("the session outlived its grant: %q %q", sout.String(), serr.String())
	}
	wantEnd := "gatehouse: session ended: your access grant for role oncall expired"
	if err == nil || !strings.Contains(serr.String(), wantEnd) {
		t.Fatalf("session end: %v stderr %q, want %q", err, serr.String(), wantEnd)
	}
	select { // the forward closes with the grant (EOF), well before sshd's LoginGraceTime
	case err := <-fwdClosed:
		if err != io.EOF {
			t.Fatalf("the granted forward ended with %v, want EOF", err)
		}
	case <-ctx.Done():
		t.Fatal("the port forward outlived its grant")
	}
	waitFor(t, "forward.end naming the expired grant", func() bool {
		ends, _ := iw.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventForwardEnd, User: jitUser})
		return len(ends) == 1 && ends[0].Details["reason"] == "access grant for role oncall expired"
	})
	if r := u.direct("root", "db-1", "echo again"); r.code == 0 || !strings.Contains(r.stderr, "request it with: gatehouse request --role oncall") {
		t.Fatalf("ssh after expiry: %s", r)
	}

	// Every step audited; the requester's page shows them.
	for _, typ := range []string{audit.EventRequestCreated, audit.EventRequestApproved, audit.EventRequestDenied, audit.EventRequestExpired} {
		typ := typ
		waitFor(t, typ+" events", func() bool {
			evs, _ := iw.app.Audit.Query(context.Background(), audit.Filter{Type: typ})
			return len(evs) > 0
		})
	}
	// One event for the session the grant's end ended, one for the grant.
	var evs []audit.StoredEvent
	waitFor(t, "request.expired for the session and for the grant", func() bool {
		evs, _ = iw.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventRequestExpired, User: jitUser})
		var sessionEnd, grantEnd bool
		for _, ev := range evs {
			sessionEnd = sessionEnd || (ev.SessionID != "" && strings.Contains(ev.Reason, "grant for role oncall expired"))
			grantEnd = grantEnd || ev.Reason == "access grant for role oncall expired"
		}
		return sessionEnd && grantEnd
	})
	denied, _ := iw.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventRequestDenied, User: jitUser})
	if len(denied) != 1 || !strings.Contains(denied[0].Reason, "you cannot approve or deny your own access request") {
		t.Fatalf("the self-approval attempt is not audited: %+v", denied)
	}
	testenv.Step(t, requester, "requester's page", chromedp.Navigate(iw.webURL+"/requests"), chromedp.WaitVisible("#request-"+id))
	row, _ := chromedp.Run(requester, chromedp.Text("#request-"+id))
	if !strings.Contains(row, "approved by "+testenv.OIDCUser) || !strings.Contains(row, "expired") {
		t.Fatalf("requester's row: %q", row)
	}
}
