package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder"
)

// severalInstances skips a test of several instances in the SQLite run
// before it starts anything.
func severalInstances(t *testing.T) {
	t.Helper()
	if !onPostgres() {
		t.Skip("several instances share a PostgreSQL database; this run uses SQLite (set GATEHOUSE_TEST_DB=postgres)")
	}
}

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
	severalInstances(t)
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

// webCookie signs user in to the web UI of every instance on w's database
// (a web session row with TOTP done) and returns the cookie value and CSRF
// token.
func webCookie(t *testing.T, w *world, user string) (cookie, csrf string) {
	t.Helper()
	cookie, csrf = user+"-session-token-for-test", user+"-csrf-token-for-test"
	h := sha256.Sum256([]byte(cookie))
	if _, err := w.app.Env.DB.Exec(`INSERT INTO web_sessions(id_hash, user_name, issuer, subject, groups, mfa_at, csrf,
		client_addr, user_agent, created, expires) VALUES (?, ?, 'iss', ?, '', ?, ?, '', '', ?, ?)`,
		h[:], user, "sub-"+user, time.Now().Unix(), csrf, time.Now().Unix(), time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	return cookie, csrf
}

// postTerminate asks web base to end session id as the holder of cookie.
func postTerminate(t *testing.T, base, id, cookie, csrf, message string) int {
	t.Helper()
	form := url.Values{"csrf": {csrf}, "message": {message}}
	req, _ := http.NewRequest("POST", base+"/sessions/"+id+"/terminate", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "gh_session", Value: cookie})
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestInstancesShareLiveViewAndTerminate: alice's session runs on instance
// A (recordings in one S3 bucket); an admin on instance B watches it live
// (B follows the recording in the shared store) and terminates it (B writes
// a termination request, A polls for it and ends the session); B's web UI
// lists the session and replays its recording. The
// latencies are logged: live view ≈ A's flush (1 s) + B's poll (0.5 s);
// terminate ≈ A's poll (1 s) + the session's teardown.
func TestInstancesShareLiveViewAndTerminate(t *testing.T) {
	severalInstances(t)
	w, _ := s3World(t)
	wb := secondInstance(t, w)
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1",
		`echo started; for i in $(seq 1 600); do echo "tick $(date +%s%N)"; sleep 0.3; done`)
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	waitFor(t, "the session on A", func() bool { return strings.Contains(out.String(), "tick") })
	live, err := wb.app.Sessions.List(context.Background(), recorder.SessionFilter{Live: true})
	if err != nil || len(live) != 1 || live[0].User != "alice" {
		t.Fatalf("B's live sessions: %+v %v", live, err)
	}
	id := live[0].ID
	if wb.app.Recs.Live(id) != nil || w.app.Recs.Live(id) == nil {
		t.Fatal("the session is not A's")
	}
	cookie, csrf := webCookie(t, w, "test-user2") // role admins

	// Live view on B.
	webB := "http://" + wb.app.WebAddr()
	cfg, _ := websocket.NewConfig("ws://"+wb.app.WebAddr()+"/sessions/"+id+"/stream", webB)
	cfg.Header = http.Header{"Cookie": {"gh_session=" + cookie}}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var lags []time.Duration
	var sawStart bool
	for len(lags) < 8 {
		ws.SetReadDeadline(time.Now().Add(45 * time.Second))
		var msg string
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			t.Fatalf("live view on B: %v (after %d ticks)", err, len(lags))
		}
		var ev []any
		if err := json.Unmarshal([]byte(msg), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event %q: %v", msg, err)
		}
		text, _ := ev[2].(string)
		sawStart = sawStart || strings.Contains(text, "started")
		for _, f := range strings.Fields(text) {
			if ns, err := strconv.ParseInt(f, 10, 64); err == nil && ns > time.Now().Add(-time.Hour).UnixNano() && sawStart {
				lags = append(lags, time.Since(time.Unix(0, ns)))
			}
		}
	}
	if !sawStart {
		t.Fatal("B's live view did not start from the session's beginning")
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	t.Logf("live view on B of a session on A: output shown %v (median) to %v (max) after the target wrote it "+
		"(includes the history sent first)", lags[len(lags)/2].Round(10*time.Millisecond), lags[len(lags)-1].Round(10*time.Millisecond))

	// A user who is not an admin (the session's own user, who sees it) cannot
	// end it through B: nothing reaches the termination table.
	ac, acsrf := webCookie(t, w, "alice")
	if code := postTerminate(t, webB, id, ac, acsrf, "alice stops it"); code != http.StatusForbidden {
		t.Fatalf("alice's terminate on B: %d", code)
	}
	if n, _ := countRows(t, w, `SELECT COUNT(*) FROM session_terminations`); n != 0 {
		t.Fatalf("a non-admin's terminate wrote %d requests", n)
	}

	// Terminate on B.
	asked := time.Now()
	if code := postTerminate(t, webB, id, cookie, csrf, "stop from B"); code != http.StatusSeeOther {
		t.Fatalf("terminate on B: %d", code)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the session on A kept running after terminate on B; stderr %q", errb.String())
	}
	t.Logf("terminate on B ended the ssh session on A after %v", time.Since(asked).Round(10*time.Millisecond))
	if !strings.Contains(errb.String(), "gatehouse: session ended: stop from B (test-user2)") {
		t.Fatalf("stderr %q", errb.String())
	}
	// The live view on B ends once A has sealed the recording.
	for {
		ws.SetReadDeadline(time.Now().Add(45 * time.Second))
		var msg string
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("B's live view did not end with the session")
			}
			break
		}
	}
	s, err := w.app.Sessions.Get(context.Background(), id)
	if err != nil || s.EndReason != "stop from B (test-user2)" {
		t.Fatalf("session row: %+v %v", s, err)
	}
	if n, _ := countRows(t, w, `SELECT COUNT(*) FROM session_terminations`); n != 0 {
		t.Fatalf("%d termination requests left", n)
	}
	// B's web UI lists A's session and replays its recording.
	get := func(path string) string {
		req, _ := http.NewRequest("GET", webB+path, nil)
		req.AddCookie(&http.Cookie{Name: "gh_session", Value: cookie})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s on B: %d", path, resp.StatusCode)
		}
		return string(b)
	}
	if !strings.Contains(get("/sessions"), id) {
		t.Fatal("B's session list lacks A's session")
	}
	if cast := get("/sessions/" + id + "/cast"); !strings.Contains(cast, "started") || !strings.Contains(cast, "tick ") {
		t.Fatalf("B's replay of A's recording:\n%s", cast)
	}
}

func countRows(t *testing.T, w *world, q string) (int, error) {
	t.Helper()
	var n int
	err := w.app.Env.DB.QueryRow(q).Scan(&n)
	return n, err
}

// TestInstancesLiveViewNeedsSharedStore: with each instance recording to
// its own directory, B's live view of a session on A says why it cannot
// show it (in the terminal, then the stream ends) instead of an empty view.
func TestInstancesLiveViewNeedsSharedStore(t *testing.T) {
	severalInstances(t)
	w := newWorldWith(t, "", "web:\n  listen: \"127.0.0.1:0\"\n  insecure_http: true\n")
	wb := secondInstance(t, w)
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; sleep 60")
	var out syncBuffer
	c.Stdout = &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	waitFor(t, "the session on A", func() bool { return strings.Contains(out.String(), "started") })
	live, err := wb.app.Sessions.List(context.Background(), recorder.SessionFilter{Live: true})
	if err != nil || len(live) != 1 {
		t.Fatalf("B's live sessions: %+v %v", live, err)
	}
	cookie, _ := webCookie(t, w, "alice")
	cfg, _ := websocket.NewConfig("ws://"+wb.app.WebAddr()+"/sessions/"+live[0].ID+"/stream", "http://"+wb.app.WebAddr())
	cfg.Header = http.Header{"Cookie": {"gh_session=" + cookie}}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(45 * time.Second))
	var msg string
	if err := websocket.Message.Receive(ws, &msg); err != nil {
		t.Fatalf("B's live view: %v", err)
	}
	if !strings.Contains(msg, "live view stopped: this session runs on another instance whose recordings this instance cannot read") ||
		!strings.Contains(msg, "recording.s3") {
		t.Fatalf("B's live view said %q", msg)
	}
	if err := websocket.Message.Receive(ws, &msg); err == nil {
		t.Fatalf("the stream went on: %q", msg)
	}
}
