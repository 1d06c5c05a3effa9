package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

func TestExecDirectAndProxyJump(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	tests := []struct {
		name       string
		run        func() result
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"direct exit 0", func() result { return alice.direct("root", "db-1", "echo hi") }, 0, "hi\n", ""},
		{"direct exit 3 with stderr", func() result { return alice.direct("root", "db-1", "echo out; echo err >&2; exit 3") }, 3, "out\n", "err\n"},
		{"proxyjump exit 3", func() result { return alice.run("ssh", "db-1", "echo jumped; exit 3") }, 3, "jumped\n", ""},
		{"proxyjump uppercase host", func() result { return alice.run("ssh", "-o", "HostName=DB-1", "db-1", "echo ok") }, 0, "ok\n", ""},
		{"stdin streamed", func() result { return alice.run("ssh", "db-1", "head -c 5; echo") }, 0, "\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.run()
			if r.code != tt.wantCode || r.stdout != tt.wantStdout || r.stderr != tt.wantStderr {
				t.Fatalf("got %s", r)
			}
		})
	}
}

func TestExitSignal(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	r := alice.direct("root", "db-1", "kill -TERM $$")
	if r.code == 0 {
		t.Fatalf("killed remote command reported success: %s", r)
	}
	s := lastSession(t, w)
	if s.ExitSignal != "TERM" {
		t.Fatalf("session exit signal %q, want TERM", s.ExitSignal)
	}
}

func TestMenuListsReachableTargets(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	r := alice.run("ssh", "gw")
	if r.code != 0 || !strings.Contains(r.stdout, "db-1") || !strings.Contains(r.stdout, "signed in as alice") {
		t.Fatalf("menu: %s", r)
	}
	// Ready-to-paste commands with this user's real values, no placeholders.
	if !strings.Contains(r.stdout, "  ssh -p "+w.port+" root@db-1@127.0.0.1\r\n") ||
		!strings.Contains(r.stdout, "  ssh -J alice@127.0.0.1:"+w.port+" root@db-1\r\n") || strings.Contains(r.stdout, "LOGIN@") {
		t.Fatalf("menu's connect hint: %s", r)
	}
	bob := w.newUser("bob", time.Hour)
	r = bob.run("ssh", "gw")
	if r.code != 0 || !strings.Contains(r.stdout, "db-1") || strings.Contains(r.stdout, "dead-1") {
		t.Fatalf("bob's menu must list db-1 only: %s", r)
	}
}

func TestRefusalsAreOneLineAndAudited(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	carol := w.newUser("carol", time.Hour)
	mallory := w.newUser("mallory", time.Hour)
	tests := []struct {
		name string
		run  func() result
		want string
	}{
		{"login not allowed", func() result { return carol.direct("root", "db-1", "id") },
			"gatehouse: access denied: no role of carol (nobody-login) allows root on db-1"},
		{"user without roles", func() result { return mallory.direct("root", "db-1", "id") },
			"gatehouse: access denied: user mallory has no roles"},
		{"unknown target direct", func() result { return alice.direct("root", "nosuch-1", "id") },
			`gatehouse: unknown target "nosuch-1" (ssh to the gateway without a target to list yours)`},
		{"unknown target proxyjump", func() result { return alice.run("ssh", "nosuch-1", "id") },
			`gatehouse: unknown target "nosuch-1"`},
		{"unknown host key", func() result { return alice.direct("root", "wrongkey-1", "id") },
			"gatehouse: target wrongkey-1 presented an unknown host key SHA256:"},
		{"target down", func() result { return alice.direct("root", "dead-1", "id") },
			"gatehouse: cannot reach dead-1 (connection refused)\r\n"},
		{"bad address", func() result {
			return alice.run("ssh", "-p", w.port, "-o", "LogLevel=INFO", "root@db-1@x@127.0.0.1", "id")
		},
			`gatehouse: bad address: "root@db-1@x" has more than one '@'; use login@target`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.run()
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("want a failure saying %q, got %s", tt.want, r)
			}
		})
	}
	evs, err := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionDenied})
	if err != nil {
		t.Fatal(err)
	}
	reasons := ""
	for _, ev := range evs {
		reasons += ev.Reason + "\n"
	}
	for _, want := range []string{"no role of carol", "user mallory has no roles", "unknown host key", "cannot reach dead-1"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("no session.denied event with %q; got:\n%s", want, reasons)
		}
	}
}

func TestCertificatesRefused(t *testing.T) {
	w := newWorld(t, "")
	expired := w.newUser("alice", time.Hour)
	past := time.Now().Add(-3 * time.Hour)
	cert := issueAt(t, w, "alice", expired.key, past, time.Hour)
	expired.setCert(cert)

	foreign := w.newUser("alice", time.Hour)
	foreignCA, _ := newKeyPair(t)
	signer, _ := ssh.NewSignerFromKey(foreignCA)
	fc := readCert(t, foreign.key+"-cert.pub")
	fc.Signature = nil
	fc.SignCert(rand.Reader, signer)
	foreign.setCert(fc)

	tests := []struct {
		name string
		u    *user
		want string
	}{
		{"expired", expired, "gatehouse: certificate has expired (run 'gatehouse login')"},
		{"foreign CA", foreign, "gatehouse: certificate is not signed by this gateway's user CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.u.run("ssh", "-o", "LogLevel=INFO", "-p", w.port, "root@db-1@127.0.0.1", "id")
			if r.code != 255 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "Permission denied") {
				t.Fatalf("want refusal with %q, got %s", tt.want, r)
			}
		})
	}
	evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventAuthFailure})
	if len(evs) < 2 {
		t.Fatalf("auth failures not audited: %d events", len(evs))
	}
}

func TestSessionRecordAndTargetLog(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	if r := alice.direct("root", "db-1", "printf 12345; exit 7"); r.code != 7 || r.stdout != "12345" {
		t.Fatalf("got %s", r)
	}
	s := lastSession(t, w)
	if s.User != "alice" || s.Target != "db-1" || s.Login != "root" || s.Mode != "direct" || s.Kind != "exec" ||
		s.Command != "printf 12345; exit 7" || s.ExitStatus == nil || *s.ExitStatus != 7 || s.BytesOut != 5 ||
		!strings.HasPrefix(s.ClientAddr, "127.0.0.1:") || !strings.Contains(s.ClientVersion, "OpenSSH") ||
		s.UserCertSerial == 0 || s.SessionCertSerial == 0 || s.End.IsZero() {
		t.Fatalf("session row %+v", s)
	}
	// The target's own log names the person and the session.
	want := fmt.Sprintf("ID gatehouse:alice session:%s", s.ID)
	waitFor(t, "sshd log line "+want, func() bool { return strings.Contains(w.sshd.Log(), want) })
	// The per-session certificate had one principal, source-address and a short life.
	var kind, principals string
	var after, before int64
	err := w.app.Env.DB.QueryRow(`SELECT kind, principals, valid_after, valid_before FROM certificates WHERE serial = ?`,
		int64(s.SessionCertSerial)).Scan(&kind, &principals, &after, &before)
	if err != nil || kind != "session" || principals != "root" || before-after > 4*60 {
		t.Fatalf("session certificate: kind %q principals %q life %ds err %v", kind, principals, before-after, err)
	}
}

func TestPTYResize(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-tt", "-p", w.port, "root@db-1@127.0.0.1")
	term := testenv.StartPTY(t, c, 80, 24)
	term.Send("stty size; echo READY1\r")
	term.Expect(t, "24 80", 15*time.Second)
	term.Resize(132, 43)
	time.Sleep(200 * time.Millisecond) // let SIGWINCH reach the remote shell
	term.Send("stty size; echo READY2\r")
	term.Expect(t, "43 132", 15*time.Second)
	term.Send("exit 4\r")
	if code := term.Wait(); code != 4 {
		t.Fatalf("exit code %d, want 4", code)
	}
}

func randomFile(t *testing.T, path string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func sumFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func TestSCPBothWays(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	src := filepath.Join(w.dir, "up.bin")
	want := randomFile(t, src, 20<<20)
	remote := filepath.Join(w.dir, "remote.bin")
	if r := alice.run("scp", "-q", src, "db-1:"+remote); r.code != 0 {
		t.Fatalf("scp up: %s", r)
	}
	if got := sumFile(t, remote); got != want {
		t.Fatal("uploaded file differs")
	}
	back := filepath.Join(w.dir, "down.bin")
	// Down through direct addressing: the user name carries login@target.
	if r := alice.run("scp", "-q", "-P", w.port, "root@db-1@127.0.0.1:"+remote, back); r.code != 0 {
		t.Fatalf("scp down: %s", r)
	}
	if got := sumFile(t, back); got != want {
		t.Fatal("downloaded file differs")
	}
	// bob's role does not allow file transfer.
	bob := w.newUser("bob", time.Hour)
	r := bob.run("scp", "-q", src, "db-1:"+remote+".bob")
	if r.code == 0 || !strings.Contains(r.stderr, "file transfer (sftp/scp) to db-1 is not allowed by your roles") {
		t.Fatalf("bob's scp: %s", r)
	}
}

func TestSFTPBatch(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	src := filepath.Join(w.dir, "put.txt")
	want := randomFile(t, src, 100000)
	rdir := filepath.Join(w.dir, "sftp-remote")
	os.Mkdir(rdir, 0o755)
	got := filepath.Join(w.dir, "got.txt")
	batch := filepath.Join(w.dir, "batch")
	os.WriteFile(batch, []byte(fmt.Sprintf("cd %s\nput %s file.txt\nls\nget file.txt %s\nrename file.txt moved.txt\nrm moved.txt\n", rdir, src, got)), 0o644)
	r := alice.run("sftp", "-b", batch, "db-1")
	if r.code != 0 || !strings.Contains(r.stdout, "file.txt") {
		t.Fatalf("sftp: %s", r)
	}
	if sumFile(t, got) != want {
		t.Fatal("sftp round trip differs")
	}
	// File operations are itemised in the audit log.
	waitFor(t, "file events", func() bool {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventFile})
		ops := ""
		for _, ev := range evs {
			ops += fmt.Sprint(ev.Details["op"], " ", ev.Details["path"], ";")
		}
		return strings.Contains(ops, "write "+rdir+"/file.txt") && strings.Contains(ops, "read "+rdir+"/file.txt") &&
			strings.Contains(ops, "rename "+rdir+"/file.txt") && strings.Contains(ops, "remove "+rdir+"/moved.txt")
	})
}

func TestRsyncTree(t *testing.T) {
	testenv.RequireBinary(t, "rsync", "apt-get install rsync")
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	src := filepath.Join(w.dir, "tree")
	sums := map[string]string{}
	for _, p := range []string{"a.txt", "sub/b.bin", "sub/deeper/c.bin"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		sums[p] = randomFile(t, filepath.Join(src, p), 50000)
	}
	dst := filepath.Join(w.dir, "tree-copy")
	if r := alice.run("rsync", "-a", src+"/", "db-1:"+dst+"/"); r.code != 0 {
		t.Fatalf("rsync: %s", r)
	}
	for p, want := range sums {
		if got := sumFile(t, filepath.Join(dst, p)); got != want {
			t.Fatalf("%s differs", p)
		}
	}
}

// echoServer accepts connections on loopback and echoes them.
func echoServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return l.Addr().String()
}

func TestPortForwardAllowedAndRefused(t *testing.T) {
	w := newWorld(t, "")
	dest := echoServer(t)
	try := func(u *user) (string, result) {
		lp := freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := u.cmd(ctx, "ssh", "-N", "-L", lp+":"+dest, "-p", w.port, "root@db-1@127.0.0.1")
		var errb bytes.Buffer
		c.Stderr = &errb
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		var conn net.Conn
		waitFor(t, "forward listener", func() bool {
			var err error
			conn, err = net.Dial("tcp", "127.0.0.1:"+lp)
			return err == nil
		})
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte("ping"))
		buf := make([]byte, 4)
		n, _ := io.ReadFull(conn, buf)
		conn.Close()
		time.Sleep(300 * time.Millisecond)
		cancel()
		c.Wait()
		return string(buf[:n]), result{stderr: errb.String()}
	}
	alice := w.newUser("alice", time.Hour)
	if got, r := try(alice); got != "ping" {
		t.Fatalf("alice's forward: got %q, %s", got, r)
	}
	bob := w.newUser("bob", time.Hour)
	got, r := try(bob)
	if got != "" || !strings.Contains(r.stderr, "port forwarding to "+dest+" via db-1 is not allowed by your roles") {
		t.Fatalf("bob's forward: got %q, %s", got, r)
	}
	waitFor(t, "forward events", func() bool {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: "forward."})
		types := ""
		for _, ev := range evs {
			types += ev.Type + ":" + ev.User + " "
		}
		return strings.Contains(types, "forward.start:alice") && strings.Contains(types, "forward.end:alice") &&
			strings.Contains(types, "forward.denied:bob")
	})
}

func TestEnvAllowList(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-o", "SendEnv=LC_GATEHOUSE LD_PRELOAD GIT_PROTOCOL", "-p", w.port, "root@db-1@127.0.0.1",
		`echo "lc=$LC_GATEHOUSE ld=$LD_PRELOAD git=$GIT_PROTOCOL"`)
	// GIT_PROTOCOL is how git asks for protocol v2 over ssh.
	c.Env = append(c.Env, "LC_GATEHOUSE=kept", "LD_PRELOAD=/tmp/evil.so", "GIT_PROTOCOL=version=2")
	out, err := c.Output()
	if err != nil || string(out) != "lc=kept ld= git=version=2\n" {
		t.Fatalf("env: %q %v", out, err)
	}
}

func TestTargetKilledMidSession(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; sleep 60")
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session start", func() bool { return strings.Contains(out.String(), "started") })
	w.sshd.KillAll()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		c.Process.Kill()
		t.Fatal("ssh hung after the target died")
	}
	if c.ProcessState.ExitCode() != 255 || !strings.Contains(errb.String(), "gatehouse: the connection to db-1 was lost") {
		t.Fatalf("exit %d stderr %q", c.ProcessState.ExitCode(), errb.String())
	}
	s := lastSession(t, w)
	if s.EndReason != "connection to db-1 lost" {
		t.Fatalf("end reason %q", s.EndReason)
	}
}

func TestFiftyParallelSessions(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r result
			if i%2 == 0 {
				r = alice.direct("root", "db-1", fmt.Sprintf("echo session-%d", i))
			} else {
				r = alice.run("ssh", "db-1", fmt.Sprintf("echo session-%d", i))
			}
			if r.code != 0 || r.stdout != fmt.Sprintf("session-%d\n", i) {
				errs <- fmt.Sprintf("session %d: %s", i, r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	var n int
	waitFor(t, "50 finished session rows", func() bool {
		n = 0
		for _, r := range sessionRows(t, w, recorder.SessionFilter{Ended: true}) {
			if r.ExitStatus != nil && *r.ExitStatus == 0 {
				n++
			}
		}
		return n == 50
	})
}

func TestShutdownTellsLiveSessions(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-tt", "-p", w.port, "root@db-1@127.0.0.1")
	term := testenv.StartPTY(t, c, 80, 24)
	term.Send("echo READY$((40+2))\r") // the remote echo differs from the typed text
	term.Expect(t, "READY42", 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	w.app.Gateway.Shutdown(ctx)
	term.Expect(t, "the gateway is shutting down", 15*time.Second)
	term.Wait()
	s := lastSession(t, w)
	if !strings.Contains(s.EndReason, "shutting down") || s.End.IsZero() {
		t.Fatalf("session end %q", s.EndReason)
	}
}

// sessionRows lists up to 500 session rows matching f, newest first,
// through the recorder (the sessions table's owner).
func sessionRows(t *testing.T, w *world, f recorder.SessionFilter) []recorder.SessionRow {
	t.Helper()
	f.Limit = 500
	rows, err := w.app.Sessions.List(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func lastSession(t *testing.T, w *world) recorder.Session {
	t.Helper()
	var id string
	waitFor(t, "a finished session", func() bool {
		if rows := sessionRows(t, w, recorder.SessionFilter{Ended: true}); len(rows) > 0 {
			id = rows[0].ID
		}
		return id != ""
	})
	s, err := w.app.Sessions.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func issueAt(t *testing.T, w *world, name, keyFile string, at time.Time, ttl time.Duration) *ssh.Certificate {
	b, _ := os.ReadFile(keyFile)
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: s.PublicKey(), CertType: ssh.UserCert, KeyId: "gatehouse:" + name,
		ValidPrincipals: []string{name}, ValidAfter: uint64(at.Unix()), ValidBefore: uint64(at.Add(ttl).Unix())}
	if err := cert.SignCert(rand.Reader, w.app.Authority.UserCASigner()); err != nil {
		t.Fatal(err)
	}
	return cert
}

func readCert(t *testing.T, path string) *ssh.Certificate {
	b, _ := os.ReadFile(path)
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ssh.Certificate)
}

var _ = exec.Command

// TestLockEndsSessionsAndRefusesNewOnes locks a user from the CLI while a
// session runs: the running gateway ends it, new connections are refused
// with the reason, and unlocking lets the user back in.
func TestLockEndsSessionsAndRefusesNewOnes(t *testing.T) {
	bin := gatehouseBinary(t)
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; sleep 60")
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session start", func() bool { return strings.Contains(out.String(), "started") })
	if msg := w.cli(t, bin, "admin", "lock", "--user", "alice", "--reason", "laptop stolen"); !strings.Contains(msg, "locked alice") {
		t.Fatalf("lock: %s", msg)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.Process.Kill()
		t.Fatal("the locked user's session kept running")
	}
	if !strings.Contains(errb.String(), "your access was locked: laptop stolen") {
		t.Fatalf("stderr %q", errb.String())
	}
	r := alice.run("ssh", "-o", "LogLevel=INFO", "-p", w.port, "root@db-1@127.0.0.1", "id")
	if r.code == 0 || !strings.Contains(r.stderr, "gatehouse: your access is locked (laptop stolen); contact an administrator") {
		t.Fatalf("new connection while locked: %s", r)
	}
	w.cli(t, bin, "admin", "unlock", "--user", "alice")
	if r := alice.direct("root", "db-1", "echo back"); r.code != 0 || r.stdout != "back\n" {
		t.Fatalf("after unlock: %s", r)
	}
	evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventLock})
	if len(evs) != 2 {
		t.Fatalf("lock events: %+v", evs)
	}
}
