package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// TestMaxSessionsPerUser: with max_sessions: 1 a second session is refused
// with a line saying why while the first runs, and allowed once it ended.
func TestMaxSessionsPerUser(t *testing.T) {
	w := newWorld(t, "")
	lina := w.newUser("lina", time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := lina.cmd(ctx, "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; sleep 300")
	var out syncBuffer
	first.Stdout = &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first session", func() bool { return strings.Contains(out.String(), "started") })
	want := "gatehouse: too many sessions: you have 1 open and your roles allow 1 at once (max_sessions); end one first"
	if r := lina.direct("root", "db-1", "echo second"); r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("second session: %s\nwant %q", r, want)
	}
	evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionDenied, User: "lina"})
	if len(evs) != 1 || !strings.HasPrefix(evs[0].Reason, "too many sessions") {
		t.Fatalf("session.denied events: %+v", evs)
	}
	cancel()
	first.Wait()
	waitFor(t, "a session once the first ended", func() bool {
		r := lina.direct("root", "db-1", "echo second")
		return r.code == 0 && r.stdout == "second\n"
	})
}

// TestCertificateExpiryEndsSession: a session outlives nothing: a minute
// before the user certificate ends the user is warned in one line, and when
// it ends the session ends with the reason.
func TestCertificateExpiryEndsSession(t *testing.T) {
	w := newWorld(t, "")
	bob := w.newUser("bob", 75*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := bob.cmd(ctx, "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; sleep 600")
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session", func() bool { return strings.Contains(out.String(), "started") })
	waitFor(t, "the expiry warning", func() bool {
		return strings.Contains(errb.String(), "gatehouse: your certificate expires at ") &&
			strings.Contains(errb.String(), "UTC; this session ends then (run gatehouse login for a new one)")
	})
	if strings.Contains(errb.String(), "session ended") {
		t.Fatalf("ended at the warning: %q", errb.String())
	}
	err := c.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the session outlived its certificate: %q", errb.String())
	}
	if err == nil || !strings.Contains(errb.String(), "gatehouse: session ended: your certificate expired") {
		t.Fatalf("session end: %v %q", err, errb.String())
	}
}

// TestIdleTimeoutClosesForwards: options.idle_timeout closes a port
// forward that carried nothing for that long (ssh -N has no session to time
// out), and forward.end says why.
func TestIdleTimeoutClosesForwards(t *testing.T) {
	w := newWorld(t, "")
	fiona := w.newUser("fiona", time.Hour)
	local := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := fiona.cmd(ctx, "ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:"+local+":"+w.sshd.Addr,
		"-p", w.port, "root@db-1@127.0.0.1")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); c.Wait() }()
	var conn net.Conn
	waitFor(t, "the forward's local port", func() bool {
		var err error
		conn, err = net.Dial("tcp", "127.0.0.1:"+local)
		return err == nil
	})
	defer conn.Close()
	// The target's sshd greets through the forward, then both sides wait.
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(45 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
		t.Fatalf("through the forward: %q %v", line, err)
	}
	// Nothing passes: the gateway closes the forward (EOF here), well
	// before sshd's own LoginGraceTime (120 s) would.
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Fatalf("the idle forward was not closed: %v", err)
	}
	var ends []audit.StoredEvent
	waitFor(t, "forward.end", func() bool {
		ends, _ = w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventForwardEnd, User: "fiona"})
		return len(ends) == 1
	})
	if got := ends[0].Details["reason"]; got != "idle for 3s" {
		t.Fatalf("forward.end reason %v (details %v)", got, ends[0].Details)
	}
}
