package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"

	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// castOf decodes a recording: output text, resize events and markers.
func castOf(t *testing.T, w *world, id string) (out string, resizes, markers []string) {
	t.Helper()
	rc, err := w.app.Recs.OpenCast(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	sc.Scan() // header
	var sb strings.Builder
	for sc.Scan() {
		var ev []any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad cast line %q", sc.Text())
		}
		switch ev[1] {
		case "o":
			sb.WriteString(ev[2].(string))
		case "r":
			resizes = append(resizes, ev[2].(string))
		case "m":
			markers = append(markers, ev[2].(string))
		}
	}
	return sb.String(), resizes, markers
}

func screenOf(cols, rows int, output string) string {
	em := vt.NewEmulator(cols, rows)
	go io.Copy(io.Discard, em)
	// Close the reply pipe, not the emulator: Emulator.Close races its Read.
	defer em.InputPipe().(*io.PipeWriter).Close()
	em.Write([]byte(output))
	return em.String()
}

func TestInteractiveSessionRecordedWithCommands(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-tt", "-p", w.port, "root@db-1@127.0.0.1")
	c.Env = append(c.Env, "TERM=xterm")
	term := testenv.StartPTY(t, c, 100, 30)
	term.Expect(t, "# ", 60*time.Second) // root's shell is ready (no type-ahead)
	term.Send("PS1='rec''$ '\r")         // the echo of this line does not contain the prompt
	// Each step waits for what a person waits for: the command's own output
	// and the prompt after it. Keys typed before readline is back are
	// echoed by the tty and redrawn, a different screen; and waiting for a
	// bare "/usr/share/" would match the login banner.
	promptAfter := func(n int, marker string) {
		waitFor(t, fmt.Sprintf("%q (%d) and the prompt after it", marker, n), func() bool {
			out := term.Output()
			i := strings.LastIndex(out, marker)
			return strings.Count(out, marker) >= n && i >= 0 && strings.Contains(out[i:], "rec$ ")
		})
	}
	promptAfter(1, "PS1='rec''$ '")
	term.Send("echo first-$((40+2))\r")
	promptAfter(1, "first-42\r\n")
	term.Resize(120, 40)
	term.Send("\x1b[A\r") // history recall: the echo again
	promptAfter(2, "first-42\r\n")
	term.Send("ls -d /usr/shar\t") // tab completion
	waitFor(t, "the completed line", func() bool { return strings.Contains(term.Output(), "ls -d /usr/share/") })
	term.Send("\r")
	promptAfter(2, "/usr/share/\r\n") // the echoed line, then ls's output
	term.Send("exit\r")
	term.Wait()
	s := lastSession(t, w)
	if s.RecordingID == "" || !s.RecordingComplete || len(s.RecordingSHA256) != 64 {
		t.Fatalf("session recording fields: %+v", s)
	}
	meta, err := w.app.Recs.Meta(context.Background(), s.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, c := range meta.Commands {
		cmds = append(cmds, c.Text)
		if c.Source != "screen" {
			t.Fatalf("command %q has source %q", c.Text, c.Source)
		}
	}
	want := []string{"PS1='rec''$ '", "echo first-$((40+2))", "echo first-$((40+2))", "ls -d /usr/share/", "exit"}
	if strings.Join(cmds, "\n") != strings.Join(want, "\n") {
		t.Fatalf("commands:\n%q\nwant:\n%q", cmds, want)
	}
	out, resizes, markers := castOf(t, w, s.RecordingID)
	if len(resizes) != 1 || resizes[0] != "120x40" {
		t.Fatalf("resize events %v", resizes)
	}
	if len(markers) != len(want) {
		t.Fatalf("markers %v", markers)
	}
	// The recording replays to the screen the user saw.
	live := term.Output()
	if i := strings.LastIndex(live, "Connection to 127.0.0.1 closed."); i >= 0 {
		live = live[:i] // printed by the local ssh client, not the session
	}
	if got, live := screenOf(120, 40, out), screenOf(120, 40, live); got != live {
		t.Fatalf("replayed screen differs from the live one:\n%s\n----\n%s", got, live)
	}
	// And each command is in the audit log with user, target and origin.
	waitFor(t, "command events", func() bool {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventCommand, SessionID: s.ID})
		return len(evs) == len(want) && evs[3].Details["command"] == "ls -d /usr/share/" && evs[3].User == "alice" &&
			evs[3].Target == "db-1" && strings.HasPrefix(evs[3].ClientAddr, "127.0.0.1:") && evs[3].Details["source"] == "screen"
	})
}

func TestExecRecordedExactly(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	if r := alice.direct("root", "db-1", "echo exec-out"); r.code != 0 {
		t.Fatal(r)
	}
	s := lastSession(t, w)
	out, _, markers := castOf(t, w, s.RecordingID)
	if out != "exec-out\n" || len(markers) != 1 || markers[0] != "echo exec-out" {
		t.Fatalf("exec recording: output %q markers %v", out, markers)
	}
	// The audit writer commits in batches: the end event may land just
	// after the session row.
	var evs []audit.StoredEvent
	waitFor(t, "the session end event", func() bool {
		evs, _ = w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionEnd, SessionID: s.ID})
		return len(evs) > 0
	})
	if len(evs) != 1 || evs[0].Details["recording_sha256"] != s.RecordingSHA256 || evs[0].Details["exit_status"] != int64(0) {
		t.Fatalf("session end event: %+v", evs)
	}
}

// mountTmpfs mounts a small tmpfs (root only) for disk-full tests.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	os.Mkdir(dir, 0o700)
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	testenv.Require(t, "a tmpfs mount (root)", "run the tests as root", err == nil)
	_ = out
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func TestDiskFullEndsSessionAndSealsRecording(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	w := newWorldWith(t, "", "recording:\n  dir: "+dir+"\n")
	alice := w.newUser("alice", time.Hour)
	r := alice.direct("root", "db-1", "head -c 50000000 /dev/zero | tr '\\0' x; sleep 5")
	if r.code == 0 || !strings.Contains(r.stderr, "gatehouse: session ended: the recording could not be written") {
		t.Fatalf("want the session ended for a full disk, got exit %d stderr %q", r.code, r.stderr)
	}
	s := lastSession(t, w)
	if s.RecordingComplete || !strings.Contains(s.EndReason, "recording could not be written") {
		t.Fatalf("session %+v", s)
	}
	meta, err := w.app.Recs.Meta(context.Background(), s.RecordingID)
	if err != nil || meta.Complete || meta.Ended.IsZero() || !strings.Contains(meta.Reason, "no space left") {
		t.Fatalf("recording meta %+v err %v", meta, err)
	}
}

func TestReadOnlyRecordingsRefuseSessions(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	w := newWorldWith(t, "", "recording:\n  dir: "+dir+"\n")
	alice := w.newUser("alice", time.Hour)
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	r := alice.direct("root", "db-1", "echo should-not-run")
	if r.code == 0 || strings.Contains(r.stdout, "should-not-run") ||
		!strings.Contains(r.stderr, "gatehouse: this session cannot be recorded, so it is refused") {
		t.Fatalf("got %s", r)
	}
}

func TestQuotaEndsOnlyThatSession(t *testing.T) {
	w := newWorldWith(t, "", "recording:\n  max_session_bytes: 1000000\n")
	alice := w.newUser("alice", time.Hour)
	// The quota ends terminal sessions; without a terminal a stream that
	// is full stops being stored instead (TestLargeDownloadArrivesWhole).
	r := alice.run("ssh", "-tt", "-p", w.port, "root@db-1@127.0.0.1", "cat /dev/urandom")
	if r.code == 0 || !strings.Contains(r.stderr, "exceeded its recording size quota") {
		t.Fatalf("cat /dev/urandom: exit %d stderr %q", r.code, r.stderr)
	}
	if r := alice.direct("root", "db-1", "echo next"); r.code != 0 || r.stdout != "next\n" {
		t.Fatalf("the next session failed: %s", r)
	}
}
