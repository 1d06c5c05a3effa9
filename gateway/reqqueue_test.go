package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestReqQueuePassesOnInOrderWithoutBlocking checks what the session loop
// relies on: add never waits for a request being passed on (here one whose
// reply does not come), requests go on in the order they came, full says
// when the loop must stop reading that side and room when it may read
// again, and drained comes once, after the last request went on.
func TestReqQueuePassesOnInOrderWithoutBlocking(t *testing.T) {
	release := make(chan struct{})
	sent := make(chan string, 2*reqQueueMax)
	q := newReqQueue(func(r *ssh.Request) {
		if r.Type == "0" {
			<-release // the other side has not answered yet
		}
		sent <- r.Type
	}, make(chan struct{}, 1))
	added := make(chan struct{})
	go func() {
		defer close(added)
		for i := 0; i <= reqQueueMax; i++ { // the first is taken off the queue at once
			q.add(&ssh.Request{Type: fmt.Sprint(i)})
		}
	}()
	select {
	case <-added:
	case <-time.After(30 * time.Second):
		t.Fatal("add waited for a request being passed on")
	}
	// "0" is being passed on (it may not have been taken off the queue yet).
	for !q.full() {
		time.Sleep(time.Millisecond)
	}
	// (Taking "0" off a queue that had already filled signals room: a
	// hint the loop checks against full.)
	select {
	case <-q.room:
	default:
	}
	drained := make(chan struct{})
	q.close(func() { close(drained) })
	select {
	case <-drained:
		t.Fatal("drained before the queued requests were passed on")
	default:
	}
	close(release)
	select {
	case <-q.room:
	case <-time.After(30 * time.Second):
		t.Fatal("no room signalled once the queue emptied below its limit")
	}
	select {
	case <-drained:
	case <-time.After(30 * time.Second):
		t.Fatal("drained never came")
	}
	for i := 0; i <= reqQueueMax; i++ {
		if got := <-sent; got != fmt.Sprint(i) {
			t.Fatalf("request %d passed on as %q: out of order", i, got)
		}
	}
	if q.running {
		t.Fatal("the queue's goroutine still runs with nothing queued")
	}
}

// TestReqQueueDrainedAtOnceWhenIdle checks that a queue closed with nothing
// queued reports drained at once (the target's requests ended after
// everything went on: the relay must not wait).
func TestReqQueueDrainedAtOnceWhenIdle(t *testing.T) {
	q := newReqQueue(func(*ssh.Request) {}, make(chan struct{}, 1))
	done := false
	q.close(func() { done = true })
	if !done {
		t.Fatal("drained not called for an idle queue")
	}
}

// TestSessionRequestsServeBothSides drives a started session's requests
// (sessionReqs) between a real client channel and a real target channel,
// served by the session's own goroutine (a second session of a
// connection) and by the connection's loop that took them over
// (serveIncoming, the usual case). While the target's keepalive waits for
// the client's reply, the client's own requests (more than x/crypto queues
// per channel) must still reach the target, each once and in the order sent:
// a loop that waited for the reply would leave them unread, and the
// client's connection — the reply in it — would stall behind them. Then the
// reply, a want-reply request of the client's answered by the target, the
// target's exit-signal and exit-status in order, and the end of both sides.
func TestSessionRequestsServeBothSides(t *testing.T) {
	for _, tc := range []struct {
		name       string
		byConnLoop bool
	}{
		{"session's own goroutine", false},
		{"connection's loop", true},
	} {
		t.Run(tc.name, func(t *testing.T) { testSessionRequests(t, tc.byConnLoop) })
	}
}

// resizeRecording notes the sizes a session records.
type resizeRecording struct {
	Recording
	mu    sync.Mutex
	sizes []string
}

func (r *resizeRecording) Resize(cols, rows int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sizes = append(r.sizes, fmt.Sprintf("%dx%d", cols, rows))
	return nil
}

func testSessionRequests(t *testing.T, byConnLoop bool) {
	user, ucchans, ucreqs, _, gchans, greqsConn := sshPair(t)
	go ssh.DiscardRequests(ucreqs)
	go rejectChannels(ucchans)
	gwCli, tcchans, tcreqs, _, tchans, treqsConn := sshPair(t)
	go ssh.DiscardRequests(tcreqs)
	go ssh.DiscardRequests(treqsConn)
	go rejectChannels(tcchans)

	// The user's session channel, as the gateway accepts it: from the
	// connection's loop, or directly.
	type accepted struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
	}
	acc := make(chan accepted, 1)
	accept := func(nc ssh.NewChannel) {
		go func() {
			ch, reqs, _ := nc.Accept()
			acc <- accepted{ch, reqs}
		}()
	}
	adopted := make(chan *sessionReqs, 1)
	released := make(chan *sessionReqs, 1)
	loopEnded := make(chan *sessionReqs, 1)
	if byConnLoop {
		go serveIncoming(gchans, greqsConn, nil, adopted, accept,
			func(r *ssh.Request) { r.Reply(false, nil) }, func(p *sessionReqs) { released <- p },
			func(_ targetIncoming, _ bool, held *sessionReqs) { loopEnded <- held })
	} else {
		go ssh.DiscardRequests(greqsConn)
		go func() { accept(<-gchans) }()
	}
	uch, ureqs, err := user.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	g := <-acc
	// The target's session channel, as the gateway opens it.
	tacc := make(chan accepted, 1)
	go func() {
		ch, reqs, _ := (<-tchans).Accept()
		tacc <- accepted{ch, reqs}
	}()
	tch, treqs, err := gwCli.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	tgt := <-tacc

	// The target notes every request it gets, in order, and answers a
	// keepalive.
	const sends = 3 * reqQueueMax
	var mu sync.Mutex
	var atTarget []string
	allSent := make(chan struct{})
	go func() {
		for r := range tgt.reqs {
			mu.Lock()
			atTarget = append(atTarget, r.Type+" "+payloadString(r))
			if len(atTarget) == sends {
				close(allSent)
			}
			mu.Unlock()
			if r.WantReply {
				r.Reply(r.Type == "keepalive@openssh.com", nil)
			}
		}
	}()
	// The user holds its reply to the target's keepalive and notes the
	// requests that reach it, in order.
	keepalive, release := make(chan struct{}), make(chan struct{})
	atUser := make(chan string, 8)
	go func() {
		for r := range ureqs {
			switch r.Type {
			case "keepalive@openssh.com":
				close(keepalive)
				<-release
				r.Reply(true, nil)
			default:
				atUser <- r.Type
				if r.WantReply {
					r.Reply(false, nil)
				}
			}
		}
		close(atUser)
	}()

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	rec := &resizeRecording{}
	s := &session{ctx: ctx, cancel: cancel, ch: g.ch, tch: tch, rec: rec, tdone: make(chan struct{})}
	runDone := make(chan struct{})
	ownLoopDone := make(chan struct{})
	go func() {
		p := s.setupRequests(g.reqs, func(r *ssh.Request) (<-chan *ssh.Request, <-chan struct{}, bool) {
			r.Reply(true, nil)
			return treqs, runDone, true
		})
		if byConnLoop {
			adopted <- p // as clientConn.adopt hands it over
			return
		}
		p.loop()
		close(ownLoopDone)
	}()
	if ok, err := uch.SendRequest("shell", true, nil); err != nil || !ok {
		t.Fatalf("shell: ok=%v err=%v", ok, err)
	}

	kaReply := make(chan bool, 1)
	go func() {
		ok, _ := tgt.ch.SendRequest("keepalive@openssh.com", true, nil)
		kaReply <- ok
	}()
	wait := func(c <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-c:
		case <-time.After(30 * time.Second):
			t.Fatal(what)
		}
	}
	wait(keepalive, "the target's keepalive never reached the client")
	var want []string
	for i := 0; i < sends; i++ {
		typ, payload := "signal", ssh.Marshal(struct{ Signal string }{fmt.Sprint("SIG", i)})
		switch i % 3 {
		case 1:
			typ, payload = "window-change", ssh.Marshal(windowChange{Cols: uint32(80 + i), Rows: 24})
		case 2:
			typ, payload = "break", ssh.Marshal(struct{ Ms uint32 }{uint32(i)})
		}
		if _, err := uch.SendRequest(typ, false, payload); err != nil {
			t.Fatal(err)
		}
		want = append(want, typ+" "+payloadString(&ssh.Request{Type: typ, Payload: payload}))
	}
	wait(allSent, "the client's requests did not all reach the target while the target's keepalive waited for the client")
	mu.Lock()
	got := append([]string(nil), atTarget...)
	mu.Unlock()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("the target got\n%v\nwant (each once, in order)\n%v", got, want)
	}
	close(release)
	select {
	case ok := <-kaReply:
		if !ok {
			t.Fatal("the target's keepalive got a refusal, want the client's reply")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client's reply never reached the target")
	}
	// A client request that wants a reply gets the target's.
	if ok, err := uch.SendRequest("keepalive@openssh.com", true, nil); err != nil || !ok {
		t.Fatalf("client keepalive through the session: ok=%v err=%v, want the target's reply true", ok, err)
	}
	rec.mu.Lock()
	sizes := strings.Join(rec.sizes, ",")
	rec.mu.Unlock()
	if !strings.HasPrefix(sizes, "81x24,84x24,") || !strings.HasSuffix(sizes, fmt.Sprintf("%dx24", 80+sends-2)) {
		t.Fatalf("recorded sizes %s, want every window-change in order", sizes)
	}

	tgt.ch.SendRequest("exit-signal", false, ssh.Marshal(exitSignalMsg{Signal: "TERM"}))
	tgt.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{143}))
	for _, w := range []string{"exit-signal", "exit-status"} {
		select {
		case got := <-atUser:
			if got != w {
				t.Fatalf("the client got %q, want %q (the target's requests in order)", got, w)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the target's %s never reached the client", w)
		}
	}
	if !s.hasExit() || s.exitSignal != "TERM" {
		t.Fatalf("session noted exit signal %q, want TERM", s.exitSignal)
	}
	tgt.ch.CloseWrite()
	tgt.ch.Close()
	wait(s.tdone, "tdone not closed after the target's requests ended")
	uch.Close()
	if byConnLoop {
		select {
		case p := <-released:
			if p.live() {
				t.Fatal("released with a side still read")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the connection's loop did not release the session once both sides ended")
		}
		close(runDone)
		user.Close()
		select {
		case held := <-loopEnded:
			if held != nil {
				t.Fatal("the connection's loop ended holding a session it had released")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the connection's loop did not end with the client connection")
		}
		return
	}
	close(runDone)
	wait(ownLoopDone, "the loop did not end with both sides")
}

// payloadString shows a request's payload in a test's messages.
func payloadString(r *ssh.Request) string { return fmt.Sprintf("%x", r.Payload) }

// TestAdoptOneSessionAtATime checks the hand-over of a started session's
// requests to the connection's loop: it takes one session's at a time (a
// second session of the connection serves its own), another once the loop
// released the first, and none once the loop has ended (the session must
// then serve its own, or nobody would).
func TestAdoptOneSessionAtATime(t *testing.T) {
	c := &clientConn{adopted: make(chan *sessionReqs, 1)}
	first, second := &sessionReqs{}, &sessionReqs{}
	if !c.adopt(first) {
		t.Fatal("the loop did not take the first session")
	}
	if c.adopt(second) {
		t.Fatal("the loop took a second session while it held one")
	}
	if got := <-c.adopted; got != first {
		t.Fatal("the loop was handed another session than the first")
	}
	c.mu.Lock()
	c.loopHolds = false // as released does
	c.mu.Unlock()
	if !c.adopt(second) {
		t.Fatal("the loop did not take a session once it had released the first")
	}
	<-c.adopted
	c.mu.Lock()
	c.loopHolds, c.loopEnded = false, true
	c.mu.Unlock()
	if c.adopt(first) {
		t.Fatal("a loop that had ended took a session")
	}
	if (&clientConn{}).adopt(first) {
		t.Fatal("a connection without a loop to hand over to took a session")
	}
}
