package recorder

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"

	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
)

func newRecordings(t testing.TB, opts RecordingOptions) (*Recordings, *store.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	rdir := filepath.Join(dir, "recordings")
	r, err := OpenRecordings(rdir, db, kr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, db, rdir
}

// castLines reads a cast back: the header and the events.
func castLines(t *testing.T, r *Recordings, id string, withInput bool) (map[string]any, [][]any) {
	t.Helper()
	rc, err := r.OpenCast(context.Background(), id, withInput)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var header map[string]any
	var evs [][]any
	for sc.Scan() {
		if header == nil {
			if err := json.Unmarshal(sc.Bytes(), &header); err != nil {
				t.Fatalf("header: %v", err)
			}
			continue
		}
		var ev []any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		evs = append(evs, ev)
	}
	return header, evs
}

func outputOf(evs [][]any, typ string) string {
	var sb strings.Builder
	for _, e := range evs {
		if e[1] == typ {
			sb.WriteString(e[2].(string))
		}
	}
	return sb.String()
}

func TestRecordingRoundTrip(t *testing.T) {
	r, _, rdir := newRecordings(t, RecordingOptions{})
	rec, err := r.Start(SessionInfo{SessionID: "s1", User: "alice", Target: "db-1", Login: "root", Cols: 100, Rows: 30, Term: "xterm"})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("hello \xe2\x82")) // a euro sign split across writes
	rec.Output([]byte("\xac world\r\n"))
	rec.Input([]byte("secret"))
	rec.Resize(120, 40)
	rec.Output([]byte("<script>alert(1)</script>\x1b]52;c;ZXZpbA==\x07"))
	sum, err := rec.Close("exited")
	if err != nil || !sum.Complete || len(sum.SHA256) != 64 {
		t.Fatalf("summary %+v err %v", sum, err)
	}
	// The file is encrypted: no plaintext on disk.
	b, _ := os.ReadFile(filepath.Join(rdir, rec.ID()+".ghrec"))
	if strings.Contains(string(b), "hello") || strings.Contains(string(b), "secret") {
		t.Fatal("recording stored in clear")
	}
	if h, _ := fileSHA256(filepath.Join(rdir, rec.ID()+".ghrec")); h != sum.SHA256 {
		t.Fatalf("summary hash %s, file hash %s", sum.SHA256, h)
	}
	header, evs := castLines(t, r, rec.ID(), false)
	if header["version"].(float64) != 2 || header["width"].(float64) != 100 {
		t.Fatalf("header %v", header)
	}
	if got := outputOf(evs, "o"); got != "hello € world\r\n<script>alert(1)</script>\x1b]52;c;ZXZpbA==\x07" {
		t.Fatalf("output %q", got)
	}
	if outputOf(evs, "i") != "" {
		t.Fatal("input shown without permission")
	}
	if outputOf(evs, "r") != "120x40" {
		t.Fatalf("resize events %v", evs)
	}
	_, evs = castLines(t, r, rec.ID(), true)
	if outputOf(evs, "i") != "secret" {
		t.Fatal("input missing for a viewer allowed to see it")
	}
}

func TestRecordingCrashRecovered(t *testing.T) {
	r, db, rdir := newRecordings(t, RecordingOptions{FlushInterval: 10 * time.Millisecond})
	rec, err := r.Start(SessionInfo{SessionID: "s-crash", User: "alice", Target: "db-1", Login: "root"})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("before the crash\r\n"))
	rec.flushIfDirty()
	// A torn half-written record at the end, as a kill -9 mid-write leaves.
	f, _ := os.OpenFile(filepath.Join(rdir, rec.ID()+".ghrec"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 1, 0, 1, 2, 3})
	f.Close()
	// The gateway dies: no Close. A new process recovers.
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	r2, err := OpenRecordings(rdir, db, kr, RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	recs, err := r2.Recover(context.Background())
	if err != nil || len(recs) != 1 || recs[0].SessionID != "s-crash" {
		t.Fatalf("recovered %+v err %v", recs, err)
	}
	m, err := r2.Meta(context.Background(), rec.ID())
	if err != nil || m.Complete || !strings.Contains(m.Reason, "stopped unexpectedly") || m.Ended.IsZero() {
		t.Fatalf("meta %+v err %v", m, err)
	}
	_, evs := castLines(t, r2, rec.ID(), false)
	if outputOf(evs, "o") != "before the crash\r\n" {
		t.Fatalf("recovered output %q", outputOf(evs, "o"))
	}
	if again, _ := r2.Recover(context.Background()); len(again) != 0 {
		t.Fatal("recovered twice")
	}
}

func TestRecordingTamperDetected(t *testing.T) {
	r, _, rdir := newRecordings(t, RecordingOptions{})
	rec, _ := r.Start(SessionInfo{SessionID: "s", User: "u", Target: "t", Login: "l"})
	rec.Output([]byte(strings.Repeat("x", 1000)))
	rec.Close("exited")
	p := filepath.Join(rdir, rec.ID()+".ghrec")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o600)
	if _, err := r.OpenCast(context.Background(), rec.ID(), false); !errors.Is(err, ErrRecordingCorrupt) {
		t.Fatalf("err = %v", err)
	}
	// Truncating a sealed recording is detected too.
	b[len(b)/2] ^= 1
	os.WriteFile(p, b[:len(b)-40], 0o600)
	if _, err := r.OpenCast(context.Background(), rec.ID(), false); !errors.Is(err, ErrRecordingCorrupt) {
		t.Fatalf("truncated: err = %v", err)
	}
}

func TestRecordingQuota(t *testing.T) {
	r, _, _ := newRecordings(t, RecordingOptions{MaxBytes: 1000})
	rec, _ := r.Start(SessionInfo{SessionID: "s", User: "u", Target: "t", Login: "l"})
	for i := 0; i < 5; i++ {
		rec.Output(make([]byte, 300))
	}
	select {
	case <-rec.Failed():
	default:
		t.Fatal("quota exceeded without failing")
	}
	if !errors.Is(rec.Err(), ErrQuota) {
		t.Fatalf("err = %v", rec.Err())
	}
	sum, _ := rec.Close("quota")
	if sum.Complete || !strings.Contains(sum.Reason, "quota") {
		t.Fatalf("summary %+v", sum)
	}
}

func TestRecordingsReadOnlyDirRefused(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; use a read-only bind instead:
		// a directory path that is a file cannot be created.
		dir := t.TempDir()
		f := filepath.Join(dir, "file")
		os.WriteFile(f, nil, 0o600)
		db, _ := store.Open(filepath.Join(dir, "db"))
		defer db.Close()
		kr, _ := secrets.NewKeyring(make([]byte, 32))
		if _, err := OpenRecordings(filepath.Join(f, "recordings"), db, kr, RecordingOptions{}); err == nil {
			t.Fatal("unwritable recordings directory accepted")
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	db, _ := store.Open(filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	if _, err := OpenRecordings(dir, db, kr, RecordingOptions{}); err == nil {
		t.Fatal("read-only recordings directory accepted")
	}
}

func TestLiveSubscribe(t *testing.T) {
	r, _, _ := newRecordings(t, RecordingOptions{})
	rec, _ := r.Start(SessionInfo{SessionID: "live", User: "u", Target: "t", Login: "l"})
	if r.Live("live") != rec {
		t.Fatal("Live does not find the recording")
	}
	ch, cancel := rec.Subscribe()
	defer cancel()
	rec.Output([]byte("tick"))
	line := <-ch
	if !strings.Contains(string(line), `"o", "tick"`) {
		t.Fatalf("live line %q", line)
	}
	rec.Close("exited")
	if _, ok := <-ch; ok {
		t.Fatal("subscription not closed at the end")
	}
}

// TestCommandsFromRealShell types into a real bash in a real pty, with tab
// completion and history recall, and checks the commands read off the screen
// as the session runs: each is stored and announced before the session ends,
// and once only.
func TestCommandsFromRealShell(t *testing.T) {
	bash := testenv.RequireBinary(t, "bash", "apt-get install bash")
	r, db, _ := newRecordings(t, RecordingOptions{})
	var mu sync.Mutex
	var got []Command
	rec, err := r.Start(SessionInfo{SessionID: "sh", User: "u", Target: "t", Login: "l", Cols: 80, Rows: 24, Interactive: true,
		OnCommand: func(c Command) { mu.Lock(); got = append(got, c); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "unique-file-name.txt"), []byte("x\n"), 0o644)
	cmd := exec.Command(bash, "--norc", "--noprofile", "-i")
	cmd.Dir = dir
	cmd.Env = []string{"PS1=test$ ", "TERM=xterm", "HOME=" + dir, "PATH=/usr/bin:/bin"}
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 80, Rows: 24})
	if err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var out strings.Builder
	var omu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				rec.Output(buf[:n])
				omu.Lock()
				out.Write(buf[:n])
				omu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	waitOut := func(s string, nth int) {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			omu.Lock()
			n := strings.Count(out.String(), s)
			omu.Unlock()
			if n >= nth {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		omu.Lock()
		defer omu.Unlock()
		t.Fatalf("waiting for %q x%d; output so far:\n%s", s, nth, out.String())
	}
	typeKeys := func(s string) {
		rec.Input([]byte(s))
		f.Write([]byte(s))
	}
	waitOut("test$ ", 1)
	typeKeys("echo one\r")
	waitOut("test$ ", 2)
	// Commands are known live: the first is stored and announced while
	// the session is still open.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		var rows int
		db.QueryRow(`SELECT COUNT(*) FROM recording_commands WHERE recording_id = ?`, rec.ID()).Scan(&rows)
		if n == 1 && rows == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live command not delivered: %d announced, %d stored", n, rows)
		}
		time.Sleep(10 * time.Millisecond)
	}
	typeKeys("cat uniq\t") // tab completion to unique-file-name.txt
	waitOut("unique-file-name.txt", 1)
	typeKeys("\r")
	waitOut("test$ ", 3)
	typeKeys("\x1b[A\x1b[A\r") // history: up twice = "echo one"
	waitOut("test$ ", 4)
	typeKeys("exit\r")
	<-done
	cmd.Wait()
	sum, err := rec.Close("exited")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"echo one", "cat unique-file-name.txt", "echo one", "exit"}
	var texts []string
	for _, c := range sum.Commands {
		texts = append(texts, c.Text)
		if c.Source != "screen" {
			t.Fatalf("source %q", c.Source)
		}
	}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Fatalf("commands %q, want %q", texts, want)
	}
	mu.Lock()
	if len(got) != len(want) {
		t.Fatalf("OnCommand got %d commands", len(got))
	}
	mu.Unlock()
	var rows int
	db.QueryRow(`SELECT COUNT(*) FROM recording_commands WHERE recording_id = ?`, rec.ID()).Scan(&rows)
	if rows != len(want) {
		t.Fatalf("%d commands stored, want %d (each once)", rows, len(want))
	}
	// The commands are markers in the cast, and the cast replays to the
	// same final screen.
	_, evs := castLines(t, r, rec.ID(), false)
	if !strings.Contains(outputOf(evs, "m"), "cat unique-file-name.txt") {
		t.Fatal("command markers missing from the cast")
	}
	replay := vt.NewEmulator(80, 24)
	live := vt.NewEmulator(80, 24)
	replay.Write([]byte(outputOf(evs, "o")))
	omu.Lock()
	live.Write([]byte(out.String()))
	omu.Unlock()
	if replay.String() != live.String() || !strings.Contains(replay.String(), "cat unique-file-name.txt") {
		t.Fatalf("replayed screen differs:\n%s\n---\n%s", replay.String(), live.String())
	}
}

var _ = io.EOF

// A shell without a terminal fed a script on stdin ("ssh host bash <
// script") lists the script's lines as commands with source "stdin":
// blank lines and comments are skipped, lines split across writes are
// joined, and a last line without a newline counts.
func TestStdinShellCommands(t *testing.T) {
	r, _, _ := newRecordings(t, RecordingOptions{})
	var seen []string
	rec, err := r.Start(SessionInfo{SessionID: "stdin", User: "u", Target: "t", Login: "l", Cols: 80, Rows: 24, StdinShell: true,
		OnCommand: func(c Command) { seen = append(seen, c.Source+":"+c.Text) }})
	if err != nil {
		t.Fatal(err)
	}
	rec.Input([]byte("#!/bin/bash\n\nset -e\nsystemctl rest"))
	rec.Output([]byte("ok\n"))
	rec.Input([]byte("art nginx\n  # a comment\ntail -n 5 /var/log/syslog"))
	sum, err := rec.Close("exited")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"set -e", "systemctl restart nginx", "tail -n 5 /var/log/syslog"}
	var got []string
	for _, c := range sum.Commands {
		got = append(got, c.Text)
		if c.Source != "stdin" {
			t.Fatalf("source %q, want stdin", c.Source)
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("commands %q, want %q", got, want)
	}
	m, err := r.Meta(context.Background(), rec.ID())
	if err != nil || len(m.Commands) != 3 || m.Commands[1].Text != "systemctl restart nginx" {
		t.Fatalf("stored commands %+v, err %v", m.Commands, err)
	}
	if len(seen) != 3 || seen[0] != "stdin:set -e" {
		t.Fatalf("OnCommand got %q", seen)
	}
	// An sftp session (not a shell) lists nothing from its input.
	rec2, _ := r.Start(SessionInfo{SessionID: "sftp", User: "u", Target: "t", Login: "l", Cols: 80, Rows: 24})
	rec2.Input([]byte("rm -rf /\n"))
	if sum, _ := rec2.Close("exited"); len(sum.Commands) != 0 {
		t.Fatalf("non-shell session listed commands: %+v", sum.Commands)
	}
}

func TestShellReadsStdin(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want bool
	}{
		{"bash", true}, {"/bin/bash", true}, {"sh -s", true}, {"bash -l -e", true}, {"bash --login", true}, {"zsh -eu", true},
		{"bash -c 'rm -rf /'", false}, {"bash -lc id", false}, {"bash script.sh", false}, {"python3", false},
		{"", false}, {"uname -a", false}, {"bashful", false},
	} {
		if got := ShellReadsStdin(tc.cmd); got != tc.want {
			t.Errorf("ShellReadsStdin(%q) = %v, want %v", tc.cmd, got, tc.want)
		}
	}
}

// TestStreamFull: without a terminal, a stream past StreamFullBytes keeps
// its length and SHA-256 but stores only a prefix, the quota does not end
// the session, and ExportRaw gives back exactly the stored bytes; with a
// terminal, input counts against the quota like output.
func TestStreamFull(t *testing.T) {
	r, _, _ := newRecordings(t, RecordingOptions{MaxBytes: 1000, StreamFullBytes: 1000})
	rec, _ := r.Start(SessionInfo{SessionID: "s", User: "u", Target: "t", Login: "l", Command: "cat"})
	all := make([]byte, 0, 5000)
	for i := 0; i < 10; i++ {
		chunk := bytes.Repeat([]byte{byte(i), 0xff, 0x00}, 150) // not UTF-8
		all = append(all, chunk...)
		if err := rec.Output(chunk); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	rec.Stderr([]byte("warning\n"))
	sum, err := rec.Close("exited")
	if err != nil || !sum.Complete {
		t.Fatalf("close: %+v %v", sum, err)
	}
	want := sha256.Sum256(all)
	so := sum.Streams["stdout"]
	if so.Bytes != int64(len(all)) || so.Stored != 1350 || so.SHA256 != hex.EncodeToString(want[:]) || !so.Full() {
		t.Fatalf("stdout summary %+v", so)
	}
	got := map[string]*bytes.Buffer{}
	res, err := r.ExportRaw(context.Background(), rec.ID(), true, func(name string) (io.Writer, error) {
		got[name] = &bytes.Buffer{}
		return got[name], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got["stdout"].Bytes(), all[:1350]) || got["stderr"].String() != "warning\n" || res.Sealed["stdout"] != so {
		t.Fatalf("raw export: stdout %d bytes, stderr %q, sealed %+v", got["stdout"].Len(), got["stderr"], res.Sealed)
	}

	term, _ := r.Start(SessionInfo{SessionID: "p", User: "u", Target: "t", Login: "l", Interactive: true})
	term.Input(make([]byte, 600))
	term.Input(make([]byte, 600))
	if !errors.Is(term.Err(), ErrQuota) {
		t.Fatalf("an upload past the quota: err = %v", term.Err())
	}
	term.Close("quota")
}

// A gateway killed mid-session has stored each command live; recovery adds
// only those after the last one stored (here the second, whose row the
// crash lost), so no command is stored twice.
func TestCrashRecoveryAddsOnlyMissedCommands(t *testing.T) {
	r, db, rdir := newRecordings(t, RecordingOptions{FlushInterval: 10 * time.Millisecond})
	rec, err := r.Start(SessionInfo{SessionID: "s-crash-cmds", User: "alice", Target: "db-1", Login: "root", Cols: 80, Rows: 24, Interactive: true})
	if err != nil {
		t.Fatal(err)
	}
	const prompt = "root@db-1:~# "
	rec.Output([]byte(prompt))
	for _, line := range []string{"echo one", "echo two"} {
		for i := 0; i < len(line); i++ {
			rec.Input([]byte{line[i]})
			rec.Output([]byte{line[i]})
		}
		rec.Input([]byte("\r"))
		rec.Output([]byte("\r\n" + line[5:] + "\r\n" + prompt))
	}
	count := func() int {
		var n int
		db.QueryRow(`SELECT COUNT(*) FROM recording_commands WHERE recording_id = ?`, rec.ID()).Scan(&n)
		return n
	}
	deadline := time.Now().Add(20 * time.Second)
	for count() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d commands stored live, want 2", count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec.flushIfDirty()
	// The crash lost the second command's row; the gateway dies: no Close.
	if _, err := db.Exec(`DELETE FROM recording_commands WHERE recording_id = ? AND text = 'echo two'`, rec.ID()); err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	r2, err := OpenRecordings(rdir, db, kr, RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	recs, err := r2.Recover(context.Background())
	if err != nil || len(recs) != 1 {
		t.Fatalf("recovered %+v err %v", recs, err)
	}
	if len(recs[0].Commands) != 1 || recs[0].Commands[0].Text != "echo two" {
		t.Fatalf("recovery added %+v, want only echo two", recs[0].Commands)
	}
	m, err := r2.Meta(context.Background(), rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, c := range m.Commands {
		texts = append(texts, c.Text)
	}
	if strings.Join(texts, "|") != "echo one|echo two" {
		t.Fatalf("stored commands %q", texts)
	}
}
