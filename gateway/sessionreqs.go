package gateway

import "golang.org/x/crypto/ssh"

// sessionReqs relays a started session's channel requests both ways: the
// client's to the target and the target's to the client. Each direction
// goes through a reqQueue, so whoever serves it never waits for a reply —
// waiting for the client's answer to a target keepalive while the client's
// requests pile up unread would stall the client's connection with the
// answer in it — and a side whose queue is full is not read until it has
// room.
//
// It is served by one select loop at a time: the connection's serveIncoming
// takes over the first session of a connection (adopt), so the common
// one-session connection has no goroutine of its own for it; other sessions
// serve theirs in their own goroutine (loop). Its methods give the select
// its channels (nil, never ready, when there is nothing to read there) and
// handle what the select received; none of them blocks.
type sessionReqs struct {
	s                  *session
	reqs               <-chan *ssh.Request // the client's; nil once ended
	treqs              <-chan *ssh.Request // the target's; nil once ended or left to a drain
	toTarget, toClient *reqQueue
	runDone            <-chan struct{} // closed once the session is sealed
	ended              <-chan struct{} // runDone, once the client's requests ended
}

func newSessionReqs(s *session, reqs, treqs <-chan *ssh.Request, runDone <-chan struct{}) *sessionReqs {
	room := make(chan struct{}, 1)
	return &sessionReqs{s: s, reqs: reqs, treqs: treqs, runDone: runDone,
		toTarget: newReqQueue(s.inSession, room), toClient: newReqQueue(s.targetRequest, room)}
}

// live reports whether either side's requests are still read.
func (p *sessionReqs) live() bool { return p != nil && (p.reqs != nil || p.treqs != nil) }

// clientC is the client's requests, unless its queue is full.
func (p *sessionReqs) clientC() <-chan *ssh.Request {
	if p == nil || p.toTarget.full() {
		return nil
	}
	return p.reqs
}

// targetC is the target's requests, unless its queue is full.
func (p *sessionReqs) targetC() <-chan *ssh.Request {
	if p == nil || p.toClient.full() {
		return nil
	}
	return p.treqs
}

// roomC is signalled when a side's full queue has room again (both
// queues share it).
func (p *sessionReqs) roomC() <-chan struct{} {
	if p == nil {
		return nil
	}
	return p.toTarget.room
}

func (p *sessionReqs) endedC() <-chan struct{} {
	if p == nil {
		return nil
	}
	return p.ended
}

// client handles what clientC delivered.
func (p *sessionReqs) client(r *ssh.Request, ok bool) {
	if !ok {
		p.reqs = nil
		p.s.cancel(errDisconnected)
		p.ended = p.runDone
		return
	}
	p.toTarget.add(r)
}

// target handles what targetC delivered. s.tdone is closed once every
// request of the target's has been passed on.
func (p *sessionReqs) target(r *ssh.Request, ok bool) {
	if !ok {
		p.treqs = nil
		p.toClient.close(func() { close(p.s.tdone) })
		return
	}
	p.toClient.add(r)
}

// sealed handles endedC: the session is sealed, with the target's channel
// closed (teardown waits a bounded time for the target to confirm), and
// the rest of the target's requests must not hold the loop.
func (p *sessionReqs) sealed() {
	rest, drained := p.treqs, make(chan struct{})
	p.toClient.close(func() { close(drained) })
	s := p.s
	go func() {
		<-drained
		for r := range rest {
			s.targetRequest(r)
		}
		close(s.tdone)
	}()
	p.treqs = nil
	p.ended = nil
}

// loop serves the requests in the calling goroutine until neither side's
// are read any more.
func (p *sessionReqs) loop() {
	for p.live() {
		select {
		case r, ok := <-p.clientC():
			p.client(r, ok)
		case r, ok := <-p.targetC():
			p.target(r, ok)
		case <-p.roomC():
		case <-p.endedC():
			p.sealed()
		}
	}
}
