package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// TestTypeAheadOfThePrompt types lines through the gateway before bash has
// drawn their prompt, as a quick typist or a script does: each right after
// the output of the line before (before bash's prompt when the host is
// busy), one while the command before still runs (echoed by the terminal
// at once, and by bash again after its prompt), and a password for a read
// with echo off typed before the read began. Every line is one command,
// audited while the session is open, and the password is none.
func TestTypeAheadOfThePrompt(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-tt", "-p", w.port, "root@db-1@127.0.0.1")
	c.Env = append(c.Env, "TERM=xterm")
	term := testenv.StartPTY(t, c, 100, 30)
	defer func() {
		if t.Failed() {
			t.Logf("terminal:\n%q", term.Output())
		}
	}()
	term.Expect(t, "# ", 60*time.Second)
	// send types keys and waits for marker to be printed once more.
	send := func(keys, marker string) {
		t.Helper()
		n := strings.Count(term.Output(), marker) + 1
		term.Send(keys)
		waitFor(t, fmt.Sprintf("%q (%d)", marker, n), func() bool { return strings.Count(term.Output(), marker) >= n })
	}
	send("PS1='rec''$ '\r", "rec$ ")
	want := []string{"PS1='rec''$ '"}
	// Each line as soon as the output of the one before is on the screen.
	for i := range 12 {
		line := fmt.Sprintf("echo ahead-%d-$((%d*7))", i, i)
		send(line+"\r", fmt.Sprintf("ahead-%d-%d\r\n", i, i*7))
		want = append(want, line)
	}
	// While the command before runs. (Each waits for the shell to show the
	// line before after its prompt: a line typed in the moment between the
	// shell drawing a typed-ahead line and reading it can be missed, see
	// docs/recordings.md.)
	send("sleep 0.5; echo slow-$((1+1))\r", "$ sleep 0.5; echo slow-$((1+1))\r\n")
	send("echo during-$((2+2))\r", "during-4\r\n")
	want = append(want, "sleep 0.5; echo slow-$((1+1))", "echo during-$((2+2))")
	// A password typed before its read turned echo off: the terminal
	// shows it, but it is no command.
	send("sleep 0.5; read -r -s pw; echo got-${#pw}\r", "$ sleep 0.5; read -r -s pw; echo got-${#pw}\r\n")
	send("hunter9-ahead\r", "got-13\r\n")
	want = append(want, "sleep 0.5; read -r -s pw; echo got-${#pw}")
	send("echo done-$((3+3))\r", "done-6\r\n")
	want = append(want, "echo done-$((3+3))")

	var sessionID string
	waitFor(t, "the live session", func() bool {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionStart, User: "alice"})
		if len(evs) > 0 {
			sessionID = evs[len(evs)-1].SessionID
		}
		return sessionID != ""
	})
	var got []string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventCommand, SessionID: sessionID})
		got = got[:0]
		for _, e := range evs {
			got = append(got, fmt.Sprint(e.Details["command"]))
		}
		if len(got) >= len(want) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("live command events:\n%q\nwant:\n%q", got, want)
	}
	term.Send("exit\r")
	term.Wait()
	s := lastSession(t, w)
	meta, err := w.app.Recs.Meta(context.Background(), s.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, c := range meta.Commands {
		stored = append(stored, c.Text)
	}
	if want := append(want, "exit"); strings.Join(stored, "\n") != strings.Join(want, "\n") {
		t.Errorf("stored commands:\n%q\nwant:\n%q", stored, want)
	}
	for _, c := range append(got, stored...) {
		if strings.Contains(c, "hunter9") {
			t.Errorf("the password is a command: %q", c)
		}
	}
}
