package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/recorder"
)

// The command fidelity corpus: real typing into a real bash in a pty
// (`ssh -tt` through the gateway to the target sshd), compared with what
// bash itself ran (its history file, written after every command). Each
// case is its own session; the reconstructed commands are read from the
// gateway's database when the session has ended.

// key is one step of typing: text typed a key at a time (escape sequences
// whole), or pasted in one write; then the driver waits for the output to
// settle.
type key struct {
	text  string
	paste bool
	wait  time.Duration // extra settle time (full-screen programs)
	// upTo: instead of waiting for the output to settle, go on as soon as
	// it shows this (to type the next keys while a command runs).
	upTo string
}

func typed(s string) key { return key{text: s} }

// fidelityCase is a scripted session; secrets must never appear in a
// reconstructed command.
type fidelityCase struct {
	name    string
	keys    []key
	secrets []string
}

const longArg = "0123456789abcdefghijklmnopqrstuvwxyz-0123456789abcdefghijklmnopqrstuvwxyz-0123456789ABCDEFGHIJ"

var fidelityCorpus = []fidelityCase{
	{name: "plain", keys: []key{typed("echo hello\r"), typed("ls /\r"), typed("pwd\r"), typed("true && echo ok\r")}},
	{name: "tab completion", keys: []key{typed("ls /etc/hostn\t\r"), typed("cat /etc/os-rel\t\r"), typed("ech\t hi\r"),
		typed("ls /usr/sha\t\r")}},
	{name: "history arrows", keys: []key{typed("echo first-one\r"), typed("echo second-two\r"), typed("\x1b[A\x1b[A\r"),
		typed("\x1b[A\x1b[A\x1b[B\r")}},
	{name: "ctrl-r", keys: []key{typed("echo alpha-123\r"), typed("echo beta-456\r"), typed("\x12alpha\r"),
		typed("\x12beta\x1b[C xtra\r")}},
	{name: "line editing", keys: []key{typed("echo helo\x7f\x7flo wrld\x1b[D\x1b[D\x1b[Do\r"), typed("cho test\x01e\r"),
		typed("echo foo bar\x17baz\r"), typed("garbage here\x15echo clean\r"), typed("echo end\x01\x1b[Cx\x05!\r"),
		typed("echo abc\x1b[D\x1b[D\x1b[3~\r")}},
	{name: "ctrl-c", keys: []key{typed("echo abandoned\x03"), typed("echo after\r"), typed("sleep 5\r"), typed("\x03"),
		typed("echo later\r")}},
	{name: "wrapping", keys: []key{typed("echo " + longArg + "\r"), typed("echo " + longArg + longArg + "\r"),
		typed("seq 40\r"), typed("echo " + longArg + " end\r"), typed("echo short\r")}},
	{name: "wrapping edited", keys: []key{typed("echo " + longArg + "XYZ\x7f\x7f\x7f\r"),
		typed("echo " + longArg + "\x01\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C# \r")}},
	{name: "pasted block", keys: []key{{text: "echo p1\recho p2\recho p3\r", paste: true},
		{text: "\x1b[200~echo b1 && echo b2\x1b[201~", paste: true}, typed("\r")}},
	{name: "full-screen", keys: []key{typed("vim -u NONE /tmp/gh-fidelity.txt\r"), {text: "ihello\x1b:q!\r", wait: 500 * time.Millisecond},
		typed("less /etc/services\r"), {text: "/http\rq", wait: 500 * time.Millisecond}, typed("echo after-less\r"),
		typed("top -b -n 1 | head -3\r")}},
	{name: "password prompts", secrets: []string{"hunter2-secret", "s3cr3t-second"}, keys: []key{
		typed("read -r -s -p 'Password: ' pw; echo\r"), typed("hunter2-secret\r"),
		typed("stty -echo; read -r x; stty echo\r"), typed("s3cr3t-second\r"), typed("echo done\r")}},
	// Typed before the prompt: while the command before runs (the terminal
	// echoes the keys at once, bash again after its prompt), key by key and
	// pasted, and a password read with echo off typed before its read.
	{name: "typed ahead of the prompt", secrets: []string{"hunter3-ahead"}, keys: []key{
		{text: "sleep 0.5; echo a-$((1+1)); sleep 0.3\r", upTo: "a-2\r\n"}, {text: "echo b-$((2+1))\r", paste: true, wait: 500 * time.Millisecond},
		{text: "sleep 0.6\r", upTo: "sleep 0.6\r\n"}, {text: "echo c-$((3+1))\r", wait: 500 * time.Millisecond},
		{text: "sleep 0.4\r", upTo: "sleep 0.4\r\n"}, {text: "echo d-$((4+1))\recho e-$((5+1))\r", paste: true, wait: 500 * time.Millisecond},
		{text: "sleep 0.4; read -r -s pw; echo got-${#pw}\r", upTo: "read -r -s pw; echo got-${#pw}\r\n"},
		{text: "hunter3-ahead\r", paste: true, wait: 500 * time.Millisecond}, typed("echo done\r")}},
	{name: "clear and unicode", keys: []key{typed("echo héllo wörld\r"), typed("\x0c"), typed("echo after clear\r"),
		typed("printf '%s\\n' a b c\r")}},
}

// fidelity runs the corpus and returns exact commands, expected commands,
// spurious ones and secrets captured, printing each miss.
func (e *env) fidelity() (exact, total, spurious, leaked int, err error) {
	db, err := store.Open(filepath.Join(e.dir, "data", "gatehouse.db"))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer db.Close()
	for i, c := range fidelityCorpus {
		got, want, err := e.runCase(db.DB, i, c)
		if err != nil {
			return 0, 0, 0, 0, fmt.Errorf("case %q: %w", c.name, err)
		}
		n := lcs(got, want)
		exact, total, spurious = exact+n, total+len(want), spurious+len(got)-n
		if n != len(want) || len(got) != n {
			fmt.Fprintf(os.Stderr, "fidelity %q:\n  bash ran      %q\n  reconstructed %q\n", c.name, want, got)
		}
		for _, s := range c.secrets {
			for _, g := range got {
				if strings.Contains(g, s) {
					leaked++
					fmt.Fprintf(os.Stderr, "fidelity %q: SECRET captured in %q\n", c.name, g)
				}
			}
		}
	}
	return exact, total, spurious, leaked, nil
}

func (e *env) runCase(db *sql.DB, i int, c fidelityCase) (got, want []string, err error) {
	hist := filepath.Join(e.dir, fmt.Sprintf("fidelity-%d.hist", i))
	rc := filepath.Join(e.dir, fmt.Sprintf("fidelity-%d.rc", i))
	os.WriteFile(rc, []byte("PS1='\\u@\\h:\\w\\$ '\nHISTFILE="+hist+"\nHISTSIZE=10000\nHISTFILESIZE=10000\nunset HISTCONTROL HISTIGNORE\n"+
		"shopt -s histappend\nPROMPT_COMMAND='history -a'\nexport TERM=xterm-256color\n"), 0o644)
	os.WriteFile(hist, nil, 0o644)
	remote := "exec bash --rcfile " + rc + " -i"
	cmd := e.ssh("-tt", "gwdirect", remote)
	cmd.Env = append(cmd.Env, "TERM=xterm-256color")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 80, Rows: 24})
	if err != nil {
		return nil, nil, err
	}
	out := &settleBuffer{}
	go out.drain(f)
	if err := out.settle(60 * time.Second); err != nil {
		cmd.Process.Kill()
		return nil, nil, err
	}
	for _, k := range c.keys {
		out.mark()
		if k.paste {
			f.Write([]byte(k.text))
		} else {
			for _, tok := range keyTokens(k.text) {
				f.Write([]byte(tok))
				time.Sleep(15 * time.Millisecond)
			}
		}
		if k.upTo != "" {
			if err := out.await(k.upTo, 10*time.Second); err != nil {
				cmd.Process.Kill()
				return nil, nil, err
			}
			continue
		}
		time.Sleep(k.wait)
		if err := out.settle(10 * time.Second); err != nil {
			cmd.Process.Kill()
			return nil, nil, err
		}
	}
	// The commands are read live: they must be stored while the session
	// is still open (bash has appended each to its history file by now).
	want = historyLines(hist)
	if got, err = liveCommands(db, remote, len(want)); err != nil {
		cmd.Process.Kill()
		return nil, nil, err
	}
	f.Write([]byte("exit\r"))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	f.Close()
	final, err := sessionCommands(db, remote)
	if err != nil {
		return nil, nil, err
	}
	if len(final) > 0 && final[len(final)-1] == "exit" {
		final = final[:len(final)-1]
	}
	if strings.Join(final, "\n") != strings.Join(got, "\n") {
		// Stored twice, or found only after the session: not live.
		fmt.Fprintf(os.Stderr, "fidelity %q: stored at the end %q, live %q\n", c.name, final, got)
		got = final
	}
	return got, want, nil
}

// historyLines are the commands bash appended to its history file.
func historyLines(hist string) []string {
	var want []string
	b, _ := os.ReadFile(hist)
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		// History keeps a trailing space (after tab completion) that no
		// screen shows.
		if line = strings.TrimSpace(line); line != "" && line != "exit" {
			want = append(want, line)
		}
	}
	return want
}

// liveCommands returns the commands stored so far for the open session
// running remote, waiting up to 5 s for n of them.
func liveCommands(db *sql.DB, remote string, n int) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ss := recorder.NewSessionStore(db)
	for {
		var out []string
		sess, err := newestSession(ctx, ss, remote)
		if err == nil && sess.End.IsZero() {
			cmds, err := ss.RecordingCommands(ctx, sess.RecordingID)
			if err != nil && ctx.Err() == nil {
				return nil, err
			}
			for _, c := range cmds {
				if c.Source == "screen" {
					out = append(out, c.Text)
				}
			}
		}
		if len(out) >= n || ctx.Err() != nil {
			return out, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sessionCommands waits for the session running remote to end and returns
// its reconstructed commands.
func sessionCommands(db *sql.DB, remote string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ss := recorder.NewSessionStore(db)
	for {
		sess, err := newestSession(ctx, ss, remote)
		if err == nil && !sess.End.IsZero() {
			cmds, err := ss.RecordingCommands(ctx, sess.RecordingID)
			if err != nil {
				return nil, err
			}
			var out []string
			for _, c := range cmds {
				if c.Source == "screen" {
					out = append(out, c.Text)
				}
			}
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("session %q did not end: %v", remote, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// newestSession returns the newest of the recent sessions that ran remote.
func newestSession(ctx context.Context, ss *recorder.SessionStore, remote string) (recorder.Session, error) {
	rows, err := ss.List(ctx, recorder.SessionFilter{Limit: 500})
	if err != nil {
		return recorder.Session{}, err
	}
	for _, r := range rows {
		if r.Command == remote {
			return r.Session, nil
		}
	}
	return recorder.Session{}, fmt.Errorf("no session ran %q", remote)
}

// keyTokens splits typing into keys: an escape sequence is one key.
func keyTokens(s string) []string {
	var out []string
	for len(s) > 0 {
		n := 1
		if s[0] == 0x1b && len(s) > 2 && (s[1] == '[' || s[1] == 'O') {
			n = 2
			for n < len(s) && !(s[n] >= 0x40 && s[n] <= 0x7e) {
				n++
			}
			n++
		} else if s[0] >= 0x80 {
			for n < len(s) && s[n]&0xc0 == 0x80 {
				n++
			}
		}
		n = min(n, len(s))
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// settleBuffer collects a pty's output and tells when it has been quiet.
type settleBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	last time.Time
	err  error
	from int // where await looks from
}

func (b *settleBuffer) drain(f *os.File) {
	p := make([]byte, 4096)
	for {
		n, err := f.Read(p)
		b.mu.Lock()
		b.buf.Write(p[:n])
		b.last = time.Now()
		if err != nil {
			b.err = err
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
	}
}

// mark starts the output that await looks in.
func (b *settleBuffer) mark() {
	b.mu.Lock()
	b.from = b.buf.Len()
	b.mu.Unlock()
}

// await waits until the output since mark shows s.
func (b *settleBuffer) await(s string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		found, err := bytes.Contains(b.buf.Bytes()[b.from:], []byte(s)), b.err
		b.mu.Unlock()
		if found {
			return nil
		}
		if err != nil {
			return fmt.Errorf("session output: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("output never showed %q: %q", s, b.buf.String())
}

// settle waits until no output has arrived for 300 ms.
func (b *settleBuffer) settle(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		b.mu.Lock()
		quiet, err, any := time.Since(b.last) > 300*time.Millisecond, b.err, b.buf.Len() > 0
		b.mu.Unlock()
		if err != nil {
			return fmt.Errorf("session output: %v", err)
		}
		if quiet && any {
			return nil
		}
	}
	return fmt.Errorf("output never settled: %q", b.buf.String())
}

// lcs is the length of the longest common subsequence of a and b.
func lcs(a, b []string) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			switch {
			case a[i-1] == b[j-1]:
				dp[i][j] = dp[i-1][j-1] + 1
			case dp[i-1][j] >= dp[i][j-1]:
				dp[i][j] = dp[i-1][j]
			default:
				dp[i][j] = dp[i][j-1]
			}
		}
	}
	return dp[len(a)][len(b)]
}
