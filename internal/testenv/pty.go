package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// Term is a program running in a real pseudo-terminal.
type Term struct {
	t    testing.TB
	cmd  *exec.Cmd
	f    *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	code int
}

// StartPTY starts cmd in a new pty of the given size. It is killed when the
// test ends.
func StartPTY(t testing.TB, cmd *exec.Cmd, cols, rows int) *Term {
	t.Helper()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	if err != nil {
		t.Fatalf("start %s in a pty: %v", cmd.Path, err)
	}
	tm := &Term{t: t, cmd: cmd, f: f, done: make(chan struct{})}
	go tm.read()
	t.Cleanup(tm.Close)
	return tm
}

func (tm *Term) read() {
	defer close(tm.done)
	buf := make([]byte, 4096)
	for {
		n, err := tm.f.Read(buf)
		if n > 0 {
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
		}
		if err != nil {
			err := tm.cmd.Wait()
			tm.code = tm.cmd.ProcessState.ExitCode()
			_ = err
			return
		}
	}
}

// Send types s.
func (tm *Term) Send(s string) {
	if _, err := tm.f.Write([]byte(s)); err != nil {
		tm.t.Fatalf("pty write: %v", err)
	}
}

// Output returns everything the program printed so far.
func (tm *Term) Output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

// Expect waits until the output contains substr (a wait with a generous
// bound, not a timing assertion) and fails with the output so far if not.
func (tm *Term) Expect(t testing.TB, substr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if strings.Contains(tm.Output(), substr) {
			return
		}
		select {
		case <-tm.done:
			if strings.Contains(tm.Output(), substr) {
				return
			}
			t.Fatalf("program exited before printing %q; output:\n%s", substr, tm.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("waiting for %q; output so far:\n%s", substr, tm.Output())
}

// Resize changes the pty size (the program gets SIGWINCH).
func (tm *Term) Resize(cols, rows int) {
	if err := pty.Setsize(tm.f, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		tm.t.Fatalf("pty resize: %v", err)
	}
}

// Wait waits for the program to exit and returns its exit code.
func (tm *Term) Wait() int {
	select {
	case <-tm.done:
	case <-time.After(30 * time.Second):
		tm.t.Fatalf("program did not exit; output:\n%s", tm.Output())
	}
	return tm.code
}

// Close kills the program (if still running) and releases the pty. It is
// also done when the test ends.
func (tm *Term) Close() {
	tm.cmd.Process.Kill()
	<-tm.done
	tm.f.Close()
}

// SendUntil types s, and types it again every half second, until the output
// contains substr; for effects that arrive asynchronously, such as a resize
// reaching the remote side. It fails like Expect.
func (tm *Term) SendUntil(t testing.TB, s, substr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(tm.Output(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %q after typing %q; output so far:\n%s", substr, s, tm.Output())
		}
		tm.Send(s)
		select {
		case <-tm.done:
			if !strings.Contains(tm.Output(), substr) {
				t.Fatalf("program exited before printing %q; output:\n%s", substr, tm.Output())
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
