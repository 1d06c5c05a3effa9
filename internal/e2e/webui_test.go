package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"
	"golang.org/x/net/websocket"

	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

func TestWebUIReplayLiveAndAudit(t *testing.T) {
	iw := newIdPWorld(t)
	b := iw.browser
	var dialogs atomic.Int32
	chromedp.Listen(b, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	})
	alice := iw.newUser("alice", time.Hour)

	// A recorded interactive session with commands, including terminal
	// output that must stay data: a script tag, an OSC 52 clipboard write
	// and a title change.
	c := alice.cmd(context.Background(), "ssh", "-tt", "-p", iw.port, "root@db-1@127.0.0.1")
	term := testenv.StartPTY(t, c, 100, 30)
	term.Expect(t, "# ", 15*time.Second)
	// Each line is typed at its prompt, as a person does after seeing the
	// output (lines typed ahead of their prompt are the fidelity corpus's
	// and the cmdline tests' subject, not this test's).
	promptAfter := func(output string) {
		term.Expect(t, output, 15*time.Second)
		waitFor(t, "the prompt after "+output, func() bool {
			out := term.Output()
			return strings.Contains(out[strings.LastIndex(out, output):], "# ")
		})
	}
	term.Send("echo unique-marker-$((20+3))\r")
	promptAfter("unique-marker-23")
	term.Send(`printf '<script>alert(1)</script>\033]52;c;ZXZpbA==\007\033]0;pwned\007done-%s\n' x` + "\r")
	promptAfter("done-x")
	term.Send("sleep 1; echo second-$((1+1))\r")
	promptAfter("second-2")
	term.Send("exit\r")
	term.Wait()
	s := lastSession(t, iw.world)

	iw.browserLogin(t, "")
	testenv.Step(t, b, "recovery codes", chromedp.WaitVisible("#recovery-codes"), chromedp.Click("#continue"),
		chromedp.WaitVisible("main h1"))

	// Find the session by command text and replay it.
	testenv.Step(t, b, "search sessions", chromedp.Navigate(iw.webURL+"/sessions"), chromedp.WaitVisible("#command"),
		chromedp.SendKeys("#command", "unique-marker"), chromedp.Submit("#filters"))
	waitFor(t, "the search results", func() bool {
		loc, _ := chromedp.Run(b, chromedp.Location())
		return strings.Contains(loc, "command=unique-marker")
	})
	testenv.Step(t, b, "results", chromedp.WaitVisible("#sessions"))
	rows, _ := chromedp.Run(b, chromedp.Text("#sessions tbody"))
	if !strings.Contains(rows, "root@db-1") || strings.Count(rows, "\n") > 1 && !strings.Contains(rows, "alice") {
		t.Fatalf("search results: %q", rows)
	}
	testenv.Step(t, b, "open the replay", chromedp.Click("#sessions tbody a"), chromedp.WaitVisible("#commands"),
		chromedp.WaitVisible(".ap-player"))
	cmds, _ := chromedp.Run(b, chromedp.Text("#commands"))
	if !strings.Contains(cmds, "echo unique-marker-$((20+3))") || !strings.Contains(cmds, "sleep 1; echo second-$((1+1))") {
		t.Fatalf("command list: %q", cmds)
	}
	// Clicking a command marker moves the player to that command (the
	// player's API is asynchronous: the time lands in a global).
	var at float64
	waitFor(t, "the player to jump", func() bool {
		testenv.Step(t, b, "click the last command marker", chromedp.Click("#commands li:nth-child(4) button.marker"))
		time.Sleep(200 * time.Millisecond)
		v, err := chromedp.Run(b, chromedp.Evaluate[float64](
			`Promise.resolve(window.gatehousePlayer.getCurrentTime()).then(function(t){window.ghAt=t}); window.ghAt || 0`))
		at = v
		return err == nil && v > 0.5
	})
	title, _ := chromedp.Run(b, chromedp.Title())
	if dialogs.Load() != 0 || strings.Contains(title, "pwned") {
		t.Fatalf("terminal output executed: %d dialogs, title %q", dialogs.Load(), title)
	}
	evs, _ := iw.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventRecordingAccess, SessionID: s.ID})
	if len(evs) == 0 || evs[0].User != "test-user2" {
		t.Fatalf("recording access not audited: %+v", evs)
	}
	_ = at

	// Watch a live session, then terminate it from the page.
	c = alice.cmd(context.Background(), "ssh", "-tt", "-p", iw.port, "root@db-1@127.0.0.1")
	live := testenv.StartPTY(t, c, 80, 24)
	live.Expect(t, "# ", 15*time.Second)
	var liveID string
	waitFor(t, "the live session row", func() bool {
		if rows := sessionRows(t, iw.world, recorder.SessionFilter{Live: true}); len(rows) > 0 {
			liveID = rows[0].ID
		}
		return liveID != ""
	})
	testenv.Step(t, b, "open the live view", chromedp.Navigate(iw.webURL+"/sessions/"+liveID+"/live"), chromedp.WaitVisible("#terminal"))
	waitFor(t, "the live stream", func() bool {
		st, _ := chromedp.Run(b, chromedp.Text("#live-state"))
		return st == "live"
	})
	live.Send("echo live-$((6*7))\r")
	waitFor(t, "the live view to show the output", func() bool {
		txt, _ := chromedp.Run(b, chromedp.Evaluate[string](`(function(){var b=window.gatehouseTerm.buffer.active,s="";for(var i=0;i<b.length;i++){s+=b.getLine(i).translateToString(true)+"\n"}return s})()`))
		return strings.Contains(txt, "live-42")
	})
	// The command is known while the session runs: the live page lists it.
	waitFor(t, "the live page to list the command", func() bool {
		testenv.Step(t, b, "reload the live view", chromedp.Navigate(iw.webURL+"/sessions/"+liveID+"/live"), chromedp.WaitVisible("#live-commands"))
		txt, _ := chromedp.Run(b, chromedp.Text("#live-commands"))
		return strings.Contains(txt, "echo live-$((6*7))")
	})
	testenv.Step(t, b, "terminate", chromedp.SendKeys("#terminate-message", "maintenance window"), chromedp.Click("#terminate"),
		chromedp.WaitVisible("#commands"))
	live.Expect(t, "gatehouse: session ended: maintenance window (test-user2)", 15*time.Second)
	live.Wait()

	// The audit page: verify, and export a bundle that verifies on its own.
	testenv.Step(t, b, "verify the chain", chromedp.Navigate(iw.webURL+"/audit"), chromedp.Click("#verify"), chromedp.WaitVisible("#verify-result"))
	vr, _ := chromedp.Run(b, chromedp.Text("#verify-result"))
	if !strings.HasPrefix(vr, "OK:") {
		t.Fatalf("verify: %q", vr)
	}
	cookies, _ := chromedp.Run(b, chromedp.Evaluate[string](`document.cookie`)) // HttpOnly: must be empty
	if strings.Contains(cookies, "gh_session") {
		t.Fatal("the session cookie is readable by scripts")
	}
	zipBytes := fetchWithBrowserSession(t, b, iw.webURL+"/audit/export?format=csv")
	dir := unzipTo(t, zipBytes)
	if _, err := audit.VerifyExport(dir, iw.app.Audit.VerifierKey()); err != nil {
		t.Fatalf("downloaded export does not verify: %v", err)
	}
	for _, p := range []string{"/admin/targets", "/admin/policy", "/admin/users"} {
		testenv.Step(t, b, "open "+p, chromedp.Navigate(iw.webURL+p), chromedp.WaitVisible("main h1"))
	}
	// Phone-sized screen.
	testenv.Step(t, b, "narrow", chromedp.EmulateViewport(390, 844), chromedp.Navigate(iw.webURL+"/sessions"), chromedp.WaitVisible("#sessions"))
}

// fetchWithBrowserSession downloads a URL with the browser's cookies (the
// session cookie is HttpOnly, so it is read over the DevTools protocol).
func fetchWithBrowserSession(t *testing.T, b context.Context, u string) []byte {
	t.Helper()
	res, err := chromedp.CallBrowser(b, storage.GetCookies, storage.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", u, nil)
	for _, c := range res.Cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	return body
}

func unzipTo(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		os.WriteFile(filepath.Join(dir, filepath.Base(f.Name)), data, 0o600)
	}
	return dir
}

// TestOtherUsersRecordingIsNotFound: a user who is neither admin nor
// auditor sees only their own sessions; another user's session id, cast and
// the audit pages answer 404, not 403.
func TestOtherUsersRecordingIsNotFound(t *testing.T) {
	w := newWorldWith(t, "", "web:\n  listen: \"127.0.0.1:0\"\n  insecure_http: true\n")
	alice := w.newUser("alice", time.Hour)
	if r := alice.direct("root", "db-1", "echo secret-output"); r.code != 0 {
		t.Fatal(r)
	}
	s := lastSession(t, w)
	// bob has a verified web session (as after OIDC + TOTP).
	cookie := "bob-session-token-for-test"
	h := sha256.Sum256([]byte(cookie))
	_, err := w.app.Env.DB.Exec(`INSERT INTO web_sessions(id_hash, user_name, issuer, subject, groups, mfa_at, csrf, client_addr,
		user_agent, created, expires) VALUES (?, 'bob', 'iss', 'bob-sub', '', ?, 'csrf', '', '', ?, ?)`,
		h[:], time.Now().Unix(), time.Now().Unix(), time.Now().Add(time.Hour).Unix())
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+w.app.WebAddr()+path, nil)
		req.AddCookie(&http.Cookie{Name: "gh_session", Value: cookie})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/sessions/" + s.ID, "/sessions/" + s.ID + "/cast", "/sessions/" + s.ID + "/stream", "/audit", "/audit/export", "/admin/users", "/admin/policy", "/overview"} {
		if code, body := get(p); code != http.StatusNotFound || strings.Contains(body, "secret-output") {
			t.Errorf("bob GET %s: %d", p, code)
		}
	}
	if code, body := get("/sessions"); code != 200 || strings.Contains(body, s.ID) {
		t.Errorf("bob's session list shows alice's session (%d)", code)
	}
}

// TestLiveViewRefusesOtherOrigins: the live view's WebSocket is upgraded only
// for the gateway's own pages (no cross-site WebSocket hijacking with the
// viewer's cookie).
func TestLiveViewRefusesOtherOrigins(t *testing.T) {
	w := newWorldWith(t, "", "web:\n  listen: \"127.0.0.1:0\"\n  insecure_http: true\n")
	alice := w.newUser("alice", time.Hour)
	alice.direct("root", "db-1", "true")
	s := lastSession(t, w)
	cookie := "alice-session-token-for-test"
	h := sha256.Sum256([]byte(cookie))
	w.app.Env.DB.Exec(`INSERT INTO web_sessions(id_hash, user_name, issuer, subject, groups, mfa_at, csrf, client_addr,
		user_agent, created, expires) VALUES (?, 'alice', 'iss', 'sub', '', ?, 'csrf', '', '', ?, ?)`,
		h[:], time.Now().Unix(), time.Now().Unix(), time.Now().Add(time.Hour).Unix())
	dial := func(origin string) error {
		cfg, _ := websocket.NewConfig("ws://"+w.app.WebAddr()+"/sessions/"+s.ID+"/stream", origin)
		cfg.Header = http.Header{"Cookie": {"gh_session=" + cookie}}
		ws, err := websocket.DialConfig(cfg)
		if ws != nil {
			ws.Close()
		}
		return err
	}
	if err := dial("http://" + w.app.WebAddr()); err != nil {
		t.Fatalf("same origin refused: %v", err)
	}
	if err := dial("http://evil.example"); err == nil {
		t.Fatal("a foreign origin got the live stream")
	}
}
