package gateway

import (
	"context"
	"fmt"
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
	})
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
	q := newReqQueue(func(*ssh.Request) {})
	done := false
	q.close(func() { done = true })
	if !done {
		t.Fatal("drained not called for an idle queue")
	}
}

// TestSessionRequestsServeBothSides drives a session's one request loop
// between a real client channel and a real target channel. While the
// target's keepalive waits for the client's reply, the client's own
// requests (more than x/crypto queues per channel) must still reach the
// target: a loop that waited for the reply would leave them unread, and
// the client's connection — the reply in it — would stall behind them.
// Then the reply, the target's exit-status and the end of both sides.
func TestSessionRequestsServeBothSides(t *testing.T) {
	user, ucchans, ucreqs, gwSrv, gchans, greqsConn := sshPair(t)
	go ssh.DiscardRequests(ucreqs)
	go ssh.DiscardRequests(greqsConn)
	go rejectChannels(ucchans)
	gwCli, tcchans, tcreqs, _, tchans, treqsConn := sshPair(t)
	go ssh.DiscardRequests(tcreqs)
	go ssh.DiscardRequests(treqsConn)
	go rejectChannels(tcchans)
	_ = gwSrv

	// The user's session channel, as the gateway accepts it.
	type accepted struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
	}
	acc := make(chan accepted, 1)
	go func() {
		ch, reqs, _ := (<-gchans).Accept()
		acc <- accepted{ch, reqs}
	}()
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

	// The target counts the signals it gets.
	const signals = 3 * reqQueueMax
	var mu sync.Mutex
	gotSignals := 0
	allSignals := make(chan struct{})
	go func() {
		for r := range tgt.reqs {
			if r.Type == "signal" {
				mu.Lock()
				if gotSignals++; gotSignals == signals {
					close(allSignals)
				}
				mu.Unlock()
			}
			if r.WantReply {
				r.Reply(true, nil)
			}
		}
	}()
	// The user holds its reply to the keepalive and notes the exit status.
	keepalive, release, exit := make(chan struct{}), make(chan struct{}), make(chan string, 1)
	go func() {
		for r := range ureqs {
			switch r.Type {
			case "keepalive@openssh.com":
				close(keepalive)
				<-release
				r.Reply(true, nil)
			case "exit-status":
				exit <- r.Type
			default:
				if r.WantReply {
					r.Reply(false, nil)
				}
			}
		}
	}()

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s := &session{ctx: ctx, cancel: cancel, ch: g.ch, tch: tch, tdone: make(chan struct{})}
	runDone := make(chan struct{})
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.requests(g.reqs, func(r *ssh.Request) (<-chan *ssh.Request, <-chan struct{}, bool) {
			r.Reply(true, nil)
			return treqs, runDone, true
		})
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
	for i := 0; i < signals; i++ {
		if _, err := uch.SendRequest("signal", false, ssh.Marshal(struct{ Signal string }{"WINCH"})); err != nil {
			t.Fatal(err)
		}
	}
	wait(allSignals, "the client's requests did not reach the target while the target's keepalive waited for the client")
	close(release)
	select {
	case ok := <-kaReply:
		if !ok {
			t.Fatal("the target's keepalive got a refusal, want the client's reply")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client's reply never reached the target")
	}

	tgt.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{0}))
	select {
	case <-exit:
	case <-time.After(30 * time.Second):
		t.Fatal("the target's exit-status never reached the client")
	}
	tgt.ch.Close()
	wait(s.tdone, "tdone not closed after the target's requests ended")
	uch.Close()
	close(runDone)
	wait(loopDone, "the loop did not end with both sides")
}
