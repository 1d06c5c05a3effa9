package e2e

import (
	"bufio"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder"
)

// marker returns a unique "sleep N.NNNNNN" command, findable in /proc.
func marker() string {
	return fmt.Sprintf("sleep %d.%06d", 600+rand.IntN(300), rand.IntN(1000000))
}

// procsWith returns the pids whose command line is exactly cmd (arguments
// separated by spaces).
func procsWith(cmd string) []int {
	want := strings.ReplaceAll(cmd, " ", "\x00")
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.TrimRight(string(b), "\x00") == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

func running(cmd string) bool { return len(procsWith(cmd)) > 0 }

// killProcs cleans up markers a test left running on purpose.
func killProcs(cmds ...string) {
	for _, c := range cmds {
		for _, p := range procsWith(c) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// parentOf returns the parent pid of pid.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// sshdAncestor returns the pid of the nearest "sshd: ..." ancestor of pid:
// the target's per-connection session process.
func sshdAncestor(pid int) int {
	for pid > 1 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		ppid, _ := strconv.Atoi(f[1])
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
		if strings.HasPrefix(string(cl), "sshd: ") {
			return ppid
		}
		pid = ppid
	}
	return 0
}

func alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// TestTerminateAndLockEndTheTargetProcess: ending a session from the
// gateway (Server.TerminateUser, as the web UI does, and a CLI lock) ends
// the command on the target within seconds, and the end row is written.
func TestTerminateAndLockEndTheTargetProcess(t *testing.T) {
	bin := gatehouseBinary(t)
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	for _, how := range []string{"terminate", "lock"} {
		t.Run(how, func(t *testing.T) {
			m := marker()
			defer killProcs(m)
			c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; "+m)
			var out, errb syncBuffer
			c.Stdout, c.Stderr = &out, &errb
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Process.Kill()
			waitFor(t, "the command on the target", func() bool { return running(m) })
			start := time.Now()
			want := "admin says stop"
			switch how {
			case "terminate":
				if n := w.app.Gateway.TerminateUser("alice", want); n != 1 {
					t.Fatalf("TerminateUser ended %d sessions", n)
				}
			case "lock":
				want = "your access was locked: laptop stolen"
				w.cli(t, bin, "admin", "lock", "--user", "alice", "--reason", "laptop stolen")
				defer w.cli(t, bin, "admin", "unlock", "--user", "alice")
			}
			defer func() {
				if t.Failed() {
					t.Logf("sshd log:\n%s", w.sshd.Log())
				}
			}()
			waitFor(t, "the target's process to end", func() bool { return !running(m) })
			gone := time.Since(start)
			s := endedSession(t, w, m)
			t.Logf("%s: target process gone after %v, end row %v after the request", how, gone, s.End.Sub(start).Round(time.Millisecond))
			// The bar is 5 s (1-2.5 s measured on an idle 2-core
			// machine); the test only logs it, as timings are not asserted
			// here (a machine at load 35 took 10 s).
			if s.EndReason != want {
				t.Errorf("end reason %q, want %q", s.EndReason, want)
			}
			c.Wait()
			if c.ProcessState.ExitCode() != 255 || !strings.Contains(errb.String(), "gatehouse: session ended: "+want) {
				t.Errorf("client: exit %d, stderr %q", c.ProcessState.ExitCode(), errb.String())
			}
		})
	}
}

// endedSession waits for the end row of the session whose command mentions
// marker m.
func endedSession(t *testing.T, w *world, m string) recorder.Session {
	t.Helper()
	var id string
	waitFor(t, "the session's end row", func() bool {
		for _, r := range sessionRows(t, w, recorder.SessionFilter{Ended: true}) {
			if strings.Contains(r.Command, m) {
				id = r.ID
				return true
			}
		}
		return false
	})
	s, err := w.app.Sessions.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// directClient lets the tests reach the same sshd without the gateway, to
// compare with OpenSSH itself: a plain key authorised for root only.
type directClient struct {
	key, authorized string
}

func newDirectClient(t *testing.T) (*directClient, string) {
	dir := t.TempDir()
	d := &directClient{key: filepath.Join(dir, "id_direct"), authorized: filepath.Join(dir, "authorized_keys")}
	priv, pub := newKeyPair(t)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(d.key, pem.EncodeToMemory(block), 0o600)
	os.WriteFile(d.authorized, ssh.MarshalAuthorizedKey(pub), 0o644)
	// sshd takes the first value of a keyword, but Match blocks override.
	return d, "Match User root\n  AuthorizedKeysFile " + d.authorized + "\n"
}

func (d *directClient) cmd(w *world, args ...string) *exec.Cmd {
	base := []string{"-F", "/dev/null", "-i", d.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-p", strconv.Itoa(w.sshd.Port)}
	c := exec.Command("ssh", append(base, args...)...)
	c.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	return c
}

// outcome is which of a scenario's marker processes outlived the client.
type outcome map[string]bool

// TestClientDisconnectLikeOpenSSH kills the client in the middle of a
// session, directly to sshd and through the gateway, and compares which of
// the target's processes survive: the gateway must end the target side the
// way sshd sees a vanished client (EOF and close), never with a signal.
func TestClientDisconnectLikeOpenSSH(t *testing.T) {
	direct, extra := newDirectClient(t)
	w := newWorld(t, extra)
	alice := w.newUser("alice", time.Hour)
	via := map[string]func(args ...string) *exec.Cmd{
		"direct": func(args ...string) *exec.Cmd { return direct.cmd(w, append([]string{"root@127.0.0.1"}, args...)...) },
		"gateway": func(args ...string) *exec.Cmd {
			return alice.cmd(context.Background(), "ssh", append([]string{"-p", w.port, "root@db-1@127.0.0.1"}, args...)...)
		},
	}
	// exec without a terminal: a nohup job and the command itself.
	noPTY := func(t *testing.T, start func(args ...string) *exec.Cmd) outcome {
		bg, fg := marker(), marker()
		defer killProcs(bg, fg)
		c := start(fmt.Sprintf("nohup %s >/dev/null 2>&1 & echo started; %s", bg, fg))
		out := &syncBuffer{}
		c.Stdout = out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the command", func() bool { return strings.Contains(out.String(), "started") && running(fg) && running(bg) })
		return killClient(t, c, func() { c.Wait() }, fg, false, bg, fg)
	}
	// An interactive shell with a background job.
	shell := func(t *testing.T, start func(args ...string) *exec.Cmd) outcome {
		job := marker()
		defer killProcs(job)
		c := start("-tt")
		term := testenv.StartPTY(t, c, 80, 24)
		term.Send(job + " &\r")
		term.Send("echo READY$((40+2))\r")
		term.Expect(t, "READY42", 60*time.Second)
		waitFor(t, "the background job", func() bool { return running(job) })
		return killClient(t, c, func() { term.Wait() }, job, true, job)
	}
	for name, scenario := range map[string]func(*testing.T, func(...string) *exec.Cmd) outcome{"exec-nohup": noPTY, "shell-bg-job": shell} {
		t.Run(name, func(t *testing.T) {
			// Whether bash hangs up its job is not fixed even directly: on
			// a busy machine the job sometimes outlives a direct client and
			// sometimes one through the gateway (both seen; likely the
			// shell's read failing with EIO at the tty hangup, so bash
			// exits as on EOF, before it handles the SIGHUP it would pass
			// on). One disagreement is therefore not a difference: the pair
			// runs again, and three disagreements in a row fail.
			var want, got outcome
			for attempt := 1; ; attempt++ {
				want = scenario(t, via["direct"])
				got = scenario(t, via["gateway"])
				t.Logf("attempt %d, survivors after the client was killed: direct %v, gateway %v", attempt, want, got)
				if fmt.Sprint(sortedOutcome(want)) == fmt.Sprint(sortedOutcome(got)) {
					break
				}
				if attempt == 3 {
					t.Fatalf("through the gateway %v, directly %v (three times in a row)", sortedOutcome(got), sortedOutcome(want))
				}
			}
			if name == "exec-nohup" && !(got["bg"] && got["fg"]) {
				t.Fatalf("without a terminal the target's processes must outlive the client: %v", got)
			}
		})
	}
	s := lastSession(t, w)
	if s.EndReason != "client disconnected" {
		t.Errorf("end reason %q, want client disconnected", s.EndReason)
	}
	// sftp: closing the session must not send a signal (sshd refuses and
	// logs signals to subsystems).
	batch := filepath.Join(w.dir, "sftp.batch")
	os.WriteFile(batch, []byte("ls /\nbye\n"), 0o644)
	for i := 0; i < 3; i++ {
		if r := alice.run("sftp", "-b", batch, "db-1"); r.code != 0 {
			t.Fatalf("sftp: %s", r)
		}
	}
	if log := w.sshd.Log(); strings.Contains(log, "signal") {
		t.Fatalf("the target saw a signal request:\n%s", grepLines(log, "signal"))
	}
}

func anyRunning(markers []string) bool {
	for _, m := range markers {
		if running(m) {
			return true
		}
	}
	return false
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func sortedOutcome(o outcome) string {
	var b strings.Builder
	for _, k := range []string{"bg", "fg", "job"} {
		if v, ok := o[k]; ok {
			fmt.Fprintf(&b, "%s=%v ", k, v)
		}
	}
	return b.String()
}

// killClient SIGKILLs the client, waits until the target's per-connection
// sshd process for anchor has gone (the target has seen the disconnect) and,
// with shellToo, the anchor's parent shell,
// and reports which markers still run (named bg, fg or job by position:
// markers are given as anchor, then the ones to check).
func killClient(t *testing.T, c *exec.Cmd, wait func(), anchor string, shellToo bool, markers ...string) outcome {
	t.Helper()
	pids := procsWith(anchor)
	if len(pids) != 1 {
		t.Fatalf("%d processes for %q", len(pids), anchor)
	}
	sshd := sshdAncestor(pids[0])
	if sshd == 0 {
		t.Fatalf("no sshd ancestor for %q", anchor)
	}
	shell := parentOf(pids[0])
	c.Process.Kill()
	wait()
	waitFor(t, "the target to see the client gone", func() bool { return !alive(sshd) })
	if shellToo {
		// The shell hangs up after sshd: it passes SIGHUP on to its jobs
		// before it exits. A job that got it may take a moment to exit on a
		// busy machine: it counts as a survivor only if it still runs
		// after that.
		waitFor(t, "the shell to hang up", func() bool { return !alive(shell) })
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if !anyRunning(markers) {
				break
			}
		}
	}
	names := []string{"bg", "fg"}
	if len(markers) == 1 {
		names = []string{"job"}
	}
	o := outcome{}
	for i, m := range markers {
		o[names[i]] = running(m)
	}
	return o
}

// TestControlMasterPastMaxSessions opens 12 concurrent sessions over one
// ControlMaster connection to a target that allows 10 per connection: the
// target's refusals reach the client as refused opens, so OpenSSH falls back
// to new connections and every session succeeds.
func TestControlMasterPastMaxSessions(t *testing.T) {
	w := newWorld(t, "Match all\n  MaxSessions 10\n")
	alice := w.newUser("alice", time.Hour)
	dir, err := os.MkdirTemp("/tmp", "cm")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "m")
	cm := []string{"-o", "ControlPath=" + sock, "-p", w.port}
	master := alice.cmd(context.Background(), "ssh", append(cm, "-o", "ControlMaster=yes", "-N", "root@db-1@127.0.0.1")...)
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { master.Process.Kill(); master.Wait() }()
	waitFor(t, "the control socket", func() bool { _, err := os.Stat(sock); return err == nil })
	gate := filepath.Join(dir, "go")
	wait := fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; echo ok-", gate)
	var wg sync.WaitGroup
	results := make([]result, 12)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = alice.run("ssh", append(cm, "-o", "ControlMaster=no", "root@db-1@127.0.0.1", wait+strconv.Itoa(i))...)
		}()
	}
	waitFor(t, "12 sessions running on the target", func() bool { return countCmdlines(gate) >= 12 })
	os.WriteFile(gate, nil, 0o644)
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || r.stdout != fmt.Sprintf("ok-%d\n", i) {
			t.Errorf("session %d: %s", i, r)
		}
	}
}

// countCmdlines counts processes whose command line mentions s.
func countCmdlines(s string) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.HasPrefix(string(b), "bash\x00-c\x00") && strings.Contains(string(b), s) {
			n++
		}
	}
	return n
}

// TestShutdownHonoursItsDeadline: with a silent TCP client (no SSH banner)
// and an exec running, Shutdown with a 500 ms context returns about then,
// with ctx.Err(), and the running session is told and sealed.
func TestShutdownHonoursItsDeadline(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	silent, err := net.Dial("tcp", "127.0.0.1:"+w.port)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	m := marker()
	defer killProcs(m)
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; "+m)
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	waitFor(t, "session start", func() bool { return strings.Contains(out.String(), "started") })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = w.app.Gateway.Shutdown(ctx)
	took := time.Since(start)
	t.Logf("Shutdown with a 500ms context returned after %v: %v", took, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown returned %v, want context.DeadlineExceeded", err)
	}
	// Generous for a busy machine; before this fix it took 20-30 s.
	if took > 3*time.Second {
		t.Fatalf("Shutdown took %v with a 500ms context", took)
	}
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(silent).ReadString('\n'); err == nil {
		// The banner may arrive; the connection must then be closed.
		if _, err := silent.Read(make([]byte, 1)); err == nil {
			t.Fatal("the silent connection is still open")
		}
	}
	c.Wait()
	if !strings.Contains(errb.String(), "gatehouse: session ended: the gateway is shutting down") {
		t.Fatalf("client stderr %q", errb.String())
	}
	s := endedSession(t, w, m)
	if s.EndReason != "the gateway is shutting down" {
		t.Fatalf("end reason %q", s.EndReason)
	}
}

// TestAcceptSurvivesDescriptorExhaustion runs the gateway with 256 file
// descriptors and opens 300 connections from 30 loopback addresses: accept
// fails with EMFILE for a while, the gateway backs off instead of exiting,
// and serves a session once the flood is gone.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	bin := gatehouseBinary(t)
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.app.Close(ctx) // hand the data directory to the limited process
	cancel()
	gw, port := serveProcessLimited(t, bin, w.configFile, 256)
	var flood []net.Conn
	for i := 0; i < 300; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%30))}, Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		flood = append(flood, nc)
	}
	// Every accepted connection gets the SSH banner; the kernel queues the
	// rest until descriptors are free again.
	banners := 0
	for _, nc := range flood[:50] {
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if l, err := bufio.NewReader(nc).ReadString('\n'); err == nil && strings.HasPrefix(l, "SSH-2.0-") {
			banners++
		}
	}
	if banners == 0 {
		t.Fatal("the gateway answered none of the connections")
	}
	for _, nc := range flood {
		nc.Close()
	}
	if gw.ProcessState != nil {
		t.Fatalf("the gateway exited: %v", gw.ProcessState)
	}
	var r result
	waitFor(t, "a session after the flood", func() bool {
		r = alice.run("ssh", "-p", port, "root@db-1@127.0.0.1", "echo served")
		return r.code == 0
	})
	if r.stdout != "served\n" {
		t.Fatalf("after the flood: %s", r)
	}
	if err := gw.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the gateway is gone: %v", err)
	}
}

// serveProcessLimited runs `gatehouse serve` with RLIMIT_NOFILE set to n
// (soft and hard, so the Go runtime cannot raise it).
func serveProcessLimited(t *testing.T, bin, config string, n int) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" serve --config "$1"`, n), bin, config)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = &testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "gatehouse: SSH on ") {
		t.Fatalf("serve did not start: %q %v", line, err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "gatehouse: SSH on "))
	return cmd, addr[strings.LastIndexByte(addr, ':')+1:]
}

// restartWith closes the world's gateway and starts it again on the same
// data with edit applied to its configuration file.
func (w *world) restartWith(t *testing.T, edit func(string) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.app.Close(ctx)
	cancel()
	b, _ := os.ReadFile(w.configFile)
	edited := edit(string(b))
	if edited == string(b) {
		t.Fatal("restartWith: the edit changed nothing")
	}
	os.WriteFile(w.configFile, []byte(edited), 0o600)
	cfg, err := config.Load(w.configFile)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(cfg, slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	w.app = a
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	_, w.port, _ = net.SplitHostPort(a.SSHAddr())
}

// TestTTLAndIdleEndTheTargetProcess: a role's max_session_ttl and
// idle_timeout end the session with the reason, and the command on the
// target with it.
func TestTTLAndIdleEndTheTargetProcess(t *testing.T) {
	w := newWorld(t, "")
	w.restartWith(t, func(s string) string {
		s = strings.Replace(s, "    options: {sftp: true, port_forwarding: true}\n",
			"    options: {sftp: true, port_forwarding: true, max_session_ttl: 5s}\n", 1)
		return strings.Replace(s, "  - name: viewer\n    allow:\n      targets: {names: [db-1]}\n      logins: [root]\n",
			"  - name: viewer\n    allow:\n      targets: {names: [db-1]}\n      logins: [root]\n    options: {idle_timeout: 2s}\n", 1)
	})
	cases := []struct{ user, command, want string }{
		{"alice", "while :; do echo tick; sleep 0.5; done & ", "maximum session length 5s reached"},
		{"bob", "", "idle for 2s"},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			u := w.newUser(tc.user, time.Hour)
			// The session length counts from the session's start, not
			// the command's: on a loaded machine the 5 s can run out
			// before the target's shell has started the command. Such an
			// attempt proves nothing either way, so it is tried again
			// with a new session; a session whose command ran must end
			// with the reason, and the command with it.
			for attempt := 1; ; attempt++ {
				if ttlAttempt(t, w, u, tc.command, tc.want) || t.Failed() {
					return
				}
				if attempt == 5 {
					t.Fatalf("in %d sessions the command never started on the target before the session ended", attempt)
				}
				t.Logf("attempt %d: the session ended before the command started on the target; again", attempt)
			}
		})
	}
}

// ttlAttempt starts a session running command and reports whether the command
// started on the target; if it did, it checks that the target's process ended
// with the session and that the session ended with the reason want.
func ttlAttempt(t *testing.T, w *world, u *user, command, want string) bool {
	t.Helper()
	m := marker()
	defer killProcs(m)
	c := u.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; "+command+m)
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	exited := make(chan struct{})
	go func() { c.Wait(); close(exited) }()
	defer func() {
		if t.Failed() {
			t.Logf("client stderr %q", errb.String())
		}
	}()
	clientGone := func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	}
	waitFor(t, "the command on the target", func() bool { return running(m) || clientGone() })
	if !running(m) {
		// The session ended, for the reason wanted, before the command
		// was seen on the target: it never started, or it started and
		// ended between two looks. Either way the command is not left
		// running (a command the session's end failed to stop would be
		// seen: it sleeps for ten minutes), but the attempt did not show
		// the end stopping it.
		<-exited
		if strings.Contains(errb.String(), "gatehouse: session ended: "+want) {
			return false
		}
		t.Fatalf("the client exited without the command running on the target; stdout %q", out.String())
	}
	waitFor(t, "the target's process to end", func() bool { return !running(m) })
	s := endedSession(t, w, m)
	if s.EndReason != want {
		t.Errorf("end reason %q, want %q", s.EndReason, want)
	}
	<-exited
	if !strings.Contains(errb.String(), "gatehouse: session ended: "+want) {
		t.Errorf("client stderr %q", errb.String())
	}
	return true
}
