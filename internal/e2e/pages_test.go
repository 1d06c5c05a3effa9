package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// axeFile is axe-core (npm axe-core 4.14.1, MPL-2.0, see
// testdata/axe/LICENSE.axe-core), vendored for the tests only: the web
// server never serves it.
const axeFile = "testdata/axe/axe.min.js"

// Widths the pages are checked and photographed at.
var viewports = []struct {
	name string
	w, h int64
}{{"desktop", 1280, 800}, {"phone", 390, 844}}

// pageChecker photographs a page at every width and runs axe-core on it.
type pageChecker struct {
	t   *testing.T
	b   context.Context
	axe string
}

func newPageChecker(t *testing.T, b context.Context) *pageChecker {
	src, err := os.ReadFile(axeFile)
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	return &pageChecker{t: t, b: b, axe: string(src)}
}

// axeViolation is a failed axe-core rule, trimmed to what a fix needs.
type axeViolation struct {
	ID, Impact, Help string
	Nodes            []string
}

// check photographs the current page as name-WIDTH.png in screenshotDir
// and fails on serious or critical WCAG 2.1 A/AA violations at any width.
func (pc *pageChecker) check(name string) {
	t, b := pc.t, pc.b
	t.Helper()
	for _, vp := range viewports {
		testenv.Step(t, b, "resize to "+vp.name, chromedp.EmulateViewport(vp.w, vp.h))
		time.Sleep(150 * time.Millisecond) // let the layout settle (the player re-fits)
		if _, err := chromedp.Run(b, chromedp.Evaluate[bool](pc.axe+";true")); err != nil {
			t.Fatalf("%s: load axe-core: %v", name, err)
		}
		res, err := chromedp.Run(b, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag",
			values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}, resultTypes: ["violations"]}).then(function (r) {
			return JSON.stringify(r.violations.filter(function (v) { return v.impact === "serious" || v.impact === "critical"; })
				.map(function (v) { return {ID: v.id, Impact: v.impact, Help: v.help,
					Nodes: v.nodes.slice(0, 5).map(function (n) { return n.target.join(" ") + " " + n.html.slice(0, 120); })}; }));
		})`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: axe-core run: %v", name, err)
		}
		var vs []axeViolation
		if err := json.Unmarshal([]byte(res), &vs); err != nil {
			t.Fatalf("%s: axe-core result %q: %v", name, res, err)
		}
		for _, v := range vs {
			t.Errorf("%s (%s): accessibility: %s (%s): %s\n  %s", name, vp.name, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n  "))
		}
		testenv.Screenshot(t, b, filepath.Join(screenshotDir, name+"-"+vp.name+".png"))
	}
	testenv.Step(t, b, "back to desktop", chromedp.EmulateViewport(viewports[0].w, viewports[0].h))
	if t.Failed() {
		t.FailNow()
	}
}

// tabTo presses Tab until the element matching sel has the focus, as a
// keyboard-only user would (no clicks, no scripted focus).
func tabTo(t *testing.T, b context.Context, sel string) {
	t.Helper()
	for i := 0; i < 60; i++ {
		ok, err := chromedp.Run(b, chromedp.Evaluate[bool](fmt.Sprintf(`!!document.activeElement && document.activeElement.matches(%q)`, sel)))
		if err == nil && ok {
			return
		}
		testenv.Step(t, b, "press Tab", chromedp.KeyEvent(kb.Tab))
	}
	t.Fatalf("keyboard: Tab never reached %s", sel)
}

// typeKeys types text into the focused element with key presses.
func typeKeys(t *testing.T, b context.Context, text string) {
	t.Helper()
	testenv.Step(t, b, "type", chromedp.KeyEvent(text))
}

func pressEnter(t *testing.T, b context.Context) {
	t.Helper()
	testenv.Step(t, b, "press Enter", chromedp.KeyEvent(kb.Enter))
}

// TestScreenshots visits every page of the web UI — the demo identity
// provider's login, TOTP enrolment, recovery codes, home, overview,
// sessions, replay, live view, audit (two pages), targets, access, users,
// a browser approval, an error and the `gatehouse login` completion page —
// in real Chromium at desktop and phone width, photographs each and fails on
// serious or critical axe-core violations. Login, approval and replay are
// driven with the keyboard only. The pages' content is checked too: the
// overview's numbers, the access matrix, audit keyset paging with filters
// kept, the replay's poster frame, a script-on-stdin session labelled a shell.
//
// Refresh docs/screenshots with:
//
//	GATEHOUSE_SCREENSHOTS=docs/screenshots go test ./internal/e2e -run TestScreenshots
func TestScreenshots(t *testing.T) {
	iw := newIdPWorld(t)
	b := iw.browser
	pc := newPageChecker(t, b)
	alice := iw.newUser("alice", time.Hour)

	// Sessions of every kind: exec, a script on stdin, a refusal, an
	// interactive shell with commands.
	if r := alice.direct("root", "db-1", "uname -s"); r.code != 0 {
		t.Fatal(r)
	}
	script := alice.cmd(context.Background(), "ssh", "-p", iw.port, "root@db-1@127.0.0.1", "bash")
	script.Stdin = strings.NewReader("# maintenance\necho script-line-one\nid -un\n")
	if out, err := script.CombinedOutput(); err != nil || !strings.Contains(string(out), "script-line-one") {
		t.Fatalf("script on stdin: %v %s", err, out)
	}
	if r := alice.direct("nobody", "db-1", "true"); r.code == 0 {
		t.Fatal("nobody@db-1 allowed")
	}
	c := alice.cmd(context.Background(), "ssh", "-tt", "-p", iw.port, "root@db-1@127.0.0.1")
	term := testenv.StartPTY(t, c, 100, 30)
	term.Expect(t, "# ", 15*time.Second)
	term.Send("echo poster-$((40+2))\r")
	term.Expect(t, "poster-42", 15*time.Second)
	term.Send("exit\r")
	term.Wait()
	waitFor(t, "three ended sessions", func() bool {
		return len(sessionRows(t, iw.world, recorder.SessionFilter{Ended: true})) == 3
	})
	interactive := lastSession(t, iw.world)
	for i := 0; i < 60; i++ { // enough events for two audit pages
		iw.app.Audit.Append(context.Background(), audit.Event{Type: audit.EventAdminChange, User: "pager",
			Reason: fmt.Sprintf("paging test %02d", i), Details: map[string]any{"n": i, "note": "field-value"}})
	}

	// Keyboard-only login at the identity provider, then TOTP.
	testenv.Step(t, b, "open the login", chromedp.Navigate(iw.webURL+"/login"), chromedp.WaitVisible("#username"))
	pc.check("idp-login")
	tabTo(t, b, "#username")
	typeKeys(t, b, testenv.OIDCUser)
	tabTo(t, b, "#password")
	typeKeys(t, b, testenv.OIDCPassword)
	pressEnter(t, b)
	testenv.Step(t, b, "the TOTP page", chromedp.WaitVisible("#code"))
	if nav, _ := chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll("header nav a").length`)); nav != 0 {
		t.Fatalf("the navigation shows before the second factor (%d links)", nav)
	}
	pc.check("totp-enrol")
	secret, _ := chromedp.Run(b, chromedp.Text("#secret"))
	code, _ := totp.GenerateCode(strings.TrimSpace(secret), time.Now())
	tabTo(t, b, "#code")
	typeKeys(t, b, code)
	pressEnter(t, b)
	testenv.Step(t, b, "recovery codes", chromedp.WaitVisible("#recovery-codes"))
	pc.check("recovery-codes")
	tabTo(t, b, "#continue")
	pressEnter(t, b)
	testenv.Step(t, b, "home", chromedp.WaitVisible("#certs"))
	pc.check("home")

	// Overview: the numbers are the database's.
	testenv.Step(t, b, "overview", chromedp.Navigate(iw.webURL+"/overview"), chromedp.WaitVisible("svg.chart"))
	total := len(sessionRows(t, iw.world, recorder.SessionFilter{}))
	tiles, _ := chromedp.Run(b, chromedp.Text(".tiles"))
	tiles = strings.Join(strings.Fields(tiles), " ")
	if !strings.Contains(tiles, fmt.Sprintf("%d sessions", total)) || !strings.Contains(tiles, "0 live sessions now") {
		t.Fatalf("overview tiles (want %d sessions): %q", total, tiles)
	}
	charts, _ := chromedp.Run(b, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("svg.chart")).map(function (s) {
		return s.getAttribute("aria-label") + ": " + s.textContent; }).join("\n")`))
	day := interactive.Start.UTC().Format("Jan 2")
	for _, want := range []string{"Sessions started per day, by kind", "Refusals by reason",
		"no role of alice (dba, payments) allows nobody on db-1", "Sessions by useralice", "targetroot@db-1", day + " shell: 2", day + " exec: 1", "Recording bytes per day"} {
		if !strings.Contains(charts, want) {
			t.Fatalf("overview charts lack %q:\n%s", want, charts)
		}
	}
	pc.check("overview")

	// Sessions: the script on stdin is a shell, with its commands.
	testenv.Step(t, b, "sessions", chromedp.Navigate(iw.webURL+"/sessions"), chromedp.WaitVisible("#sessions"))
	rows, _ := chromedp.Run(b, chromedp.Text("#sessions tbody"))
	if !strings.Contains(rows, "shell (script on stdin)") || strings.Contains(rows, "sftp/scp") {
		t.Fatalf("sessions list: %q", rows)
	}
	pc.check("sessions")

	// Replay opens on the last screen (poster), and markers work from the
	// keyboard.
	testenv.Step(t, b, "replay", chromedp.Navigate(iw.webURL+"/sessions/"+interactive.ID), chromedp.WaitVisible(".ap-player"))
	var posterTxt string
	waitFor(t, "the poster frame", func() bool {
		posterTxt, _ = chromedp.Run(b, chromedp.Evaluate[string](`(document.querySelector(".ap-term-text") || {}).textContent || ""`))
		return strings.Contains(posterTxt, "poster-42")
	})
	pc.check("replay")
	tabTo(t, b, "#commands button.marker")
	pressEnter(t, b)
	waitFor(t, "the player to move to the command", func() bool {
		v, err := chromedp.Run(b, chromedp.Evaluate[float64](`window.gatehousePlayer.getCurrentTime()`, chromedp.EvalAwaitPromise))
		return err == nil && v > 0
	})

	// Audit: 50 a page, older by keyset, filters kept in the URL, details
	// as fields.
	testenv.Step(t, b, "audit", chromedp.Navigate(iw.webURL+"/audit?user=pager"), chromedp.WaitVisible("#events"))
	n, _ := chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll("#events tbody tr").length`))
	first, _ := chromedp.Run(b, chromedp.Text("#events tbody tr:first-child"))
	if n != 50 || !strings.Contains(first, "paging test 59") || !strings.Contains(first, "field-value") {
		t.Fatalf("audit page 1: %d rows, first %q", n, first)
	}
	pc.check("audit")
	testenv.Step(t, b, "older events", chromedp.Click("#older"), chromedp.WaitVisible("#newest"))
	loc, _ := chromedp.Run(b, chromedp.Location())
	n, _ = chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll("#events tbody tr").length`))
	last, _ := chromedp.Run(b, chromedp.Text("#events tbody tr:last-child"))
	if !strings.Contains(loc, "user=pager") || !strings.Contains(loc, "before_id=") || n != 10 || !strings.Contains(last, "paging test 00") {
		t.Fatalf("audit page 2 (%s): %d rows, last %q", loc, n, last)
	}
	testenv.Step(t, b, "verify", chromedp.Navigate(iw.webURL+"/audit?verify=1"), chromedp.WaitVisible("#verify-result"))
	pc.check("audit-verify")

	// Request access (pre-filled as `gatehouse request` opens it).
	testenv.Step(t, b, "request access", chromedp.Navigate(iw.webURL+"/requests?role=oncall&for=1h&reason=incident"),
		chromedp.WaitVisible("#request-form"))
	pc.check("requests")

	for _, p := range []string{"/admin/targets", "/admin/policy", "/admin/users"} {
		testenv.Step(t, b, "open "+p, chromedp.Navigate(iw.webURL+p), chromedp.WaitVisible("main h1"))
		pc.check(strings.TrimPrefix(strings.ReplaceAll(p, "/", "-"), "-"))
		if p == "/admin/policy" {
			matrix, _ := chromedp.Run(b, chromedp.Text("#access"))
			if !regexp.MustCompile(`user test-user2\s+dbaadmins\S*\s+root \(dba\)`).MatchString(matrix) {
				t.Fatalf("access matrix: %q", matrix)
			}
		}
	}

	pc.checkLive(iw, alice)
	pc.checkApproval(iw)
	testenv.Step(t, b, "an error", chromedp.Navigate(iw.webURL+"/approve/NOPE-NOPE"), chromedp.WaitVisible("#error"))
	pc.check("error")
	pc.checkCLILogin(iw)
}

// checkLive photographs a live session's page while it runs.
func (pc *pageChecker) checkLive(iw *idpWorld, u *user) {
	t, b := pc.t, pc.b
	c := u.cmd(context.Background(), "ssh", "-tt", "-p", iw.port, "root@db-1@127.0.0.1")
	live := testenv.StartPTY(t, c, 80, 24)
	live.Expect(t, "# ", 15*time.Second)
	var id string
	waitFor(t, "the live session row", func() bool {
		if rows := sessionRows(t, iw.world, recorder.SessionFilter{Live: true}); len(rows) > 0 {
			id = rows[0].ID
		}
		return id != ""
	})
	testenv.Step(t, b, "live view", chromedp.Navigate(iw.webURL+"/sessions/"+id+"/live"), chromedp.WaitVisible("#terminal"))
	live.Send("echo live-$((6*7))\r")
	waitFor(t, "the live output", func() bool {
		txt, _ := chromedp.Run(b, chromedp.Evaluate[string](`(function(){var b=window.gatehouseTerm.buffer.active,s="";for(var i=0;i<b.length;i++){s+=b.getLine(i).translateToString(true)+"\n"}return s})()`))
		return strings.Contains(txt, "live-42")
	})
	pc.check("live")
	live.Send("exit\r")
	live.Wait()
}

// checkApproval approves a plain-ssh login with the keyboard only.
func (pc *pageChecker) checkApproval(iw *idpWorld) {
	t, b := pc.t, pc.b
	keyFile := filepath.Join(t.TempDir(), "plain")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	c := exec.Command("ssh", "-F", "none", "-i", keyFile, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile="+iw.kh,
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=no", "-o", "PreferredAuthentications=publickey,keyboard-interactive",
		"-p", iw.port, "root@db-1@127.0.0.1", "echo approved-by-keyboard")
	c.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	t.Cleanup(func() { c.Process.Kill(); <-done })
	re := regexp.MustCompile(`open (http\S+)\s+and check that it shows the code (\S+)\.`)
	var m []string
	waitFor(t, "the approval URL", func() bool { m = re.FindStringSubmatch(errb.String()); return m != nil })
	testenv.Step(t, b, "approval page", chromedp.Navigate(m[1]), chromedp.WaitVisible("#approval-code"))
	pc.check("approve")
	tabTo(t, b, "#approve")
	pressEnter(t, b)
	testenv.Step(t, b, "approved", chromedp.WaitVisible("#approved"))
	select {
	case err := <-done:
		done <- err
		if err != nil || !strings.Contains(out.String(), "approved-by-keyboard") {
			t.Fatalf("approved ssh: %v %q %q", err, out.String(), errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the approved ssh did not finish")
	}
}

// checkCLILogin photographs the page `gatehouse login` shows when done.
func (pc *pageChecker) checkCLILogin(iw *idpWorld) {
	t, b := pc.t, pc.b
	cmd := exec.Command(gatehouseBinary(t), "login", "--gateway", iw.webURL, "--no-browser")
	cmd.Env = append(os.Environ(), "GATEHOUSE_HOME="+t.TempDir(), "SSH_AUTH_SOCK=")
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
	testenv.Step(t, b, "CLI login", chromedp.Navigate(loginURL), chromedp.WaitVisible("#login-complete"))
	go func() {
		for sc.Scan() {
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gatehouse login: %v", err)
	}
	pc.check("cli-login-complete")
}
