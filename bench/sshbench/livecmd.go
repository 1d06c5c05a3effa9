package main

// Live command reconstruction figures (issue 12): the delay from Enter to the
// command's audit event, and gateway memory per idle interactive session
// that has typed commands (its reconstruction state: an output tail, no
// emulator), at -idle sessions. Both run against the in-process Go target,
// which echoes typing like a line editor.

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/recorder/cmdline"
)

var flagGuard = flag.Bool("guard", true, "give the bench user deny/warn command rules, so every interactive session runs through the line guard (the fidelity corpus then measures reconstruction with Enter held and checked)")

// withGuardRole adds a role with deny and warn command rules that the
// corpus never types to the bench configuration, bound to the bench user.
func withGuardRole(cfg string) string {
	if !*flagGuard {
		return cfg
	}
	const binding = "bindings:\n  - user: bench\n    roles: [bench]"
	if !strings.Contains(cfg, binding) {
		panic("sshbench: the bench configuration changed; update withGuardRole")
	}
	return strings.Replace(cfg, binding, `  - name: guard
    deny:
      commands: ["gh-bench-never-typed", "shutdown -h"]
    warn:
      commands: ["gh-bench-warn-never-typed"]
bindings:
  - user: bench
    roles: [bench, guard]`, 1)
}

// liveResult holds the live reconstruction figures.
type liveResult struct {
	p50, p99 time.Duration
	n        int
	idle     idleResult // gateway memory per idle session after typing
	sessions int
	tracker  float64 // bytes of heap per idle Tracker (in process)
}

// typingSession is an interactive session whose keys the bench types.
type typingSession struct {
	c    *ssh.Client
	conn net.Conn // under c: a deadline on it bounds each wait for output
	addr string
	in   io.WriteCloser
	out  io.Reader
}

// openTyping opens a shell and waits for its prompt, within
// -session-timeout; the session then stays open without a deadline until
// the next expect.
func (e *env) openTyping(cfg *ssh.ClientConfig) (*typingSession, error) {
	deadline := time.Now().Add(*flagSessionTimeout)
	c, conn, err := dialDeadline(e.gwAddr, cfg, deadline)
	if err != nil {
		if !time.Now().Before(deadline) {
			return nil, errStuck(e.gwAddr, "an interactive session", err)
		}
		return nil, err
	}
	s, err := c.NewSession()
	if err == nil {
		err = s.RequestPty("xterm", 24, 80, ssh.TerminalModes{})
	}
	var ts *typingSession
	if err == nil {
		ts = &typingSession{c: c, conn: conn, addr: e.gwAddr}
		if ts.in, err = s.StdinPipe(); err == nil {
			ts.out, err = s.StdoutPipe()
		}
	}
	if err == nil {
		err = s.Shell()
	}
	if err == nil {
		err = ts.expect("$ ")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return ts, nil
}

// expect reads output until s has arrived, within -session-timeout (past
// it the connection is cut and the bench fails saying so).
func (ts *typingSession) expect(s string) error {
	deadline := time.Now().Add(*flagSessionTimeout)
	ts.conn.SetDeadline(deadline)
	defer ts.conn.SetDeadline(time.Time{})
	var seen []byte
	buf := make([]byte, 512)
	for {
		n, err := ts.out.Read(buf)
		seen = append(seen, buf[:n]...)
		if len(seen) >= len(s) && string(seen[len(seen)-len(s):]) == s {
			return nil
		}
		if err != nil {
			if !time.Now().Before(deadline) {
				return errStuck(ts.addr, fmt.Sprintf("waiting for %q", s), err)
			}
			return err
		}
	}
}

// typeLine types a command, waits for its echo, presses Enter and waits
// for the next prompt; it returns when Enter was written.
func (ts *typingSession) typeLine(cmd string) (time.Time, error) {
	if _, err := ts.in.Write([]byte(cmd)); err != nil {
		return time.Time{}, err
	}
	if err := ts.expect(cmd); err != nil {
		return time.Time{}, err
	}
	at := time.Now()
	if _, err := ts.in.Write([]byte("\r")); err != nil {
		return at, err
	}
	return at, ts.expect("\r\n$ ")
}

// liveCommands measures the delay from Enter to the audit event over n
// commands typed in one session, then memory per idle session at idle
// sessions that each typed a command.
func (e *env) liveCommands(n, idle int) (liveResult, error) {
	r := liveResult{n: n, sessions: idle}
	cfg, err := e.goClientConfig("root@fast")
	if err != nil {
		return r, err
	}
	db, err := store.Open(filepath.Join(e.dir, "data", "gatehouse.db"))
	if err != nil {
		return r, err
	}
	defer db.Close()
	ts, err := e.openTyping(cfg)
	if err != nil {
		return r, fmt.Errorf("open a typing session: %w", err)
	}
	defer ts.c.Close()
	run := time.Now().UnixNano()
	var delays []time.Duration
	for i := 0; i < n; i++ {
		cmd := fmt.Sprintf("echo live-%d-%d", run, i)
		at, err := ts.typeLine(cmd)
		if err != nil {
			return r, err
		}
		d, err := waitCommandEvent(db.DB, cmd, at)
		if err != nil {
			return r, err
		}
		delays = append(delays, d)
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	r.p50, r.p99 = delays[len(delays)/2], delays[len(delays)*99/100]
	if idle > 0 {
		r.tracker = trackerMemory(idle)
		if r.idle, err = e.idleTypedMemory(cfg, idle); err != nil {
			return r, err
		}
	}
	return r, nil
}

// trackerMemory is the heap that n idle Trackers hold after a typical
// stretch of a session each (prompts, typed commands with tab completion
// and history, a screenful of output): the reconstruction's own share of an
// idle session's memory. The process's pool of terminal emulators (shared
// by every session, used only while a line is typed; ~4.8 MiB each, most
// of it the emulator's parser buffer) is filled before the first reading,
// so the figure is what each session adds, not the pool spread over them.
func trackerMemory(n int) float64 {
	found := 0
	prompt := "\x1b[?2004h\x1b[01;32mroot@db-1\x1b[00m:\x1b[01;34m~\x1b[00m# "
	listing := strings.Repeat("-rw-r--r-- 1 root root  4096 Dec  1 05:43 a-file-with-a-long-name.txt\r\n", 40)
	session := func() *cmdline.Tracker {
		tr := cmdline.New(80, 24, func(cmdline.Command) { found++ })
		var t uint64
		step := func(in, out string) {
			t += 1000
			if in != "" {
				tr.Input([]byte(in), t)
			}
			if out != "" {
				tr.Output([]byte(out), t)
			}
		}
		step("", "Last login: today\r\n"+prompt)
		for _, k := range "ls -l /var/lo" {
			step(string(k), string(k))
		}
		step("\t", "g/")
		step("\r", "\r\n\x1b[?2004l\r"+listing+prompt)
		step("\x1b[A", "ls -l /var/log/")
		step("\r", "\r\n\x1b[?2004l\r"+listing+prompt)
		return tr
	}
	session().Close() // fills the emulator pool
	found = 0
	before := settledHeap()
	trackers := make([]*cmdline.Tracker, n)
	for i := range trackers {
		trackers[i] = session()
	}
	after := settledHeap()
	per := float64(after-before) / float64(n)
	if found != 2*n {
		fmt.Fprintf(os.Stderr, "tracker memory: %d commands found, want %d\n", found, 2*n)
	}
	runtime.KeepAlive(trackers)
	for _, tr := range trackers {
		tr.Close()
	}
	return per
}

// settledHeap is this process's live heap once it stops shrinking: the
// bench's earlier parts (2,000 idle clients just closed, the gateway's
// connections winding down) free memory for seconds after they return, and
// a single reading before the Trackers were made counted that memory, so
// the difference came out below zero (-3.3 KiB per Tracker in two runs).
// It collects until two readings 200 ms apart are within 64 KiB, at most
// 10 s.
func settledHeap() int64 {
	var ms runtime.MemStats
	read := func() int64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	last := read()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		cur := read()
		if d := cur - last; d < 64<<10 && d > -64<<10 {
			return cur
		}
		last = cur
	}
	return last
}

// waitCommandEvent polls the audit log (read-only: the audit package has no
// reader without the master key) until the command event for cmd is
// there, and returns how long after Enter (at) that was seen.
func waitCommandEvent(db *sql.DB, cmd string, at time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	needle := fmt.Sprintf(`%%"command":"%s"%%`, cmd)
	for {
		var id int64
		err := db.QueryRowContext(ctx, `SELECT id FROM audit_events WHERE type = 'command' AND details LIKE ? ORDER BY id DESC LIMIT 1`, needle).Scan(&id)
		if err == nil {
			return time.Since(at), nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("no audit event for %q within 10 s of Enter", cmd)
		}
		time.Sleep(time.Millisecond)
	}
}

// idleTypedMemory opens n interactive sessions, types a command in each
// (the Go target echoes it and answers with a prompt), and measures the
// gateway's own memory per session once they idle, as idleMemory does: heap
// in use plus goroutine stacks after a GC (from its /metrics), and RSS.
func (e *env) idleTypedMemory(cfg *ssh.ClientConfig, n int) (idleResult, error) {
	before, err := e.memAfterGC(cfg)
	if err != nil {
		return idleResult{}, err
	}
	var mu sync.Mutex
	var open []*typingSession
	defer func() {
		for _, ts := range open {
			ts.c.Close()
		}
	}()
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ts, err := e.openTyping(cfg)
				if err == nil {
					_, err = ts.typeLine(fmt.Sprintf("echo idle-session-%d with a line of typing", i))
				}
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				open = append(open, ts)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return idleResult{}, fmt.Errorf("%d of %d typing sessions failed, first: %w", n-len(open), n, err)
	}
	time.Sleep(3 * time.Second)
	after, err := e.memAfterGC(cfg)
	if err != nil {
		return idleResult{}, err
	}
	per := func(a, b int64) float64 { return float64(a-b) / float64(n) }
	r := idleResult{n: n, rss: per(after.rss, before.rss), heapInuse: per(after.heapInuse, before.heapInuse),
		heapLive: per(after.heapLive, before.heapLive), stack: per(after.stack, before.stack),
		goroutines: per(after.goroutines, before.goroutines), rssBefore: before.rss, rssAfter: after.rss}
	r.heapPlusStacks = r.heapInuse + r.stack
	fmt.Fprintf(os.Stderr, "gateway with %d idle sessions that typed a command: per session heap in use %.1f KiB, stacks %.1f KiB, %.1f goroutines, RSS %.1f KiB\n",
		n, r.heapInuse/1024, r.stack/1024, r.goroutines, r.rss/1024)
	return r, nil
}

func (r liveResult) print() {
	fmt.Printf("| Enter → command audit event (live reconstruction, %d commands) | p50 %.1f ms / p99 %.1f ms | | | within 1 s | %s |\n",
		r.n, float64(r.p50.Microseconds())/1000, float64(r.p99.Microseconds())/1000, verdictOf(r.p99 <= time.Second))
	if r.sessions > 0 {
		fmt.Printf("| live reconstruction state per idle session (%d Trackers in process, after typing) | %.2f KiB | | | (part of the 100 KiB) | |\n",
			r.sessions, r.tracker/1024)
		fmt.Printf("| gateway memory per idle interactive session that typed a command, live reconstruction on (heap in use + stacks after GC; RSS) | %.1f KiB (RSS %.1f KiB) at %d | | | ≤ 100 KiB | %s |\n",
			r.idle.heapPlusStacks/1024, r.idle.rss/1024, r.sessions, verdictOf(r.idle.heapPlusStacks <= 100*1024))
	}
}

func verdictOf(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}
