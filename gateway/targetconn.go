package gateway

import "golang.org/x/crypto/ssh"

// targetIncoming is what a target connection the gateway dialled delivers
// unasked: channel opens and global requests.
type targetIncoming struct {
	chans <-chan ssh.NewChannel
	reqs  <-chan *ssh.Request
}

// refuseTargetChannel and refuseTargetRequest answer what the target asks
// on its own over a connection without agent forwarding as ssh.Client does:
// channel opens are rejected, global requests refused.
func refuseTargetChannel(nc ssh.NewChannel) {
	nc.Reject(ssh.UnknownChannelType, "unknown channel type")
}

func refuseTargetRequest(r *ssh.Request) {
	if r.WantReply {
		r.Reply(false, nil)
	}
}

// serveTargetIncoming refuses what the target sends on its own until the
// connection closes, in one goroutine. ssh.NewClient would start three per
// connection (global requests, channel opens, a waiter for remote forwards
// the gateway never requests). It serves the target connections of
// command-restricted sessions, and a shared one after its client connection
// stopped serving (see serveIncoming); while the client connection is
// served, its loop refuses the shared connection's requests itself. (With
// agent forwarding the gateway still uses ssh.Client.)
func serveTargetIncoming(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	for chans != nil || reqs != nil {
		select {
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			refuseTargetRequest(r)
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			refuseTargetChannel(nc)
		}
	}
}

// serveIncoming is a client connection's one loop for what arrives unasked:
// the client's channel opens (each given to dispatch, which must not block)
// and global requests (answered by global), and — once the connection's
// shared target connection is up and sent on targetIn — what that target
// sends on its own (refused). One goroutine instead of three per connection
// (channel opens, global requests, the target's). It also serves one started
// session's channel requests at a time, both ways (sessionReqs, taken from
// adopted while it holds none; released is called once their requests have
// ended), so that session needs no goroutine of its own for them. Once the
// client connection has closed it calls end with what of the target's is
// still open (nil channels when none), whether targetIn was never read, and
// the session requests it still held, if any.
//
// The loop waits for its first arrival on the calling goroutine and then
// returns: each arrival is served on the goroutine that received it, which
// hands the loop to a fresh goroutine and exits (see the copiers' note in
// session.go). Answering a request runs deep — the session's handlers, the
// target's channel, the audit log — and a goroutine that stayed would keep
// the grown stack while the connection idles (4 KiB at best); a fresh one
// waits on the 2 KiB minimum. There is only ever one goroutine of the loop.
func serveIncoming(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, targetIn <-chan targetIncoming,
	adopted <-chan *sessionReqs, dispatch func(ssh.NewChannel), global func(*ssh.Request),
	released func(*sessionReqs), end func(rest targetIncoming, unread bool, held *sessionReqs)) {
	l := &incomingLoop{chans: chans, reqs: reqs, targetIn: targetIn, adopted: adopted,
		dispatch: dispatch, global: global, released: released, end: end}
	l.run()
}

// incomingLoop is serveIncoming's state between arrivals.
type incomingLoop struct {
	chans    <-chan ssh.NewChannel
	reqs     <-chan *ssh.Request
	targetIn <-chan targetIncoming
	adopted  <-chan *sessionReqs
	dispatch func(ssh.NewChannel)
	global   func(*ssh.Request)
	released func(*sessionReqs)
	end      func(rest targetIncoming, unread bool, held *sessionReqs)
	t        targetIncoming
	p        *sessionReqs
}

// run serves one arrival and hands the loop on, or ends it.
func (l *incomingLoop) run() {
	if l.chans == nil && l.reqs == nil {
		l.end(l.t, l.targetIn != nil, l.p)
		return
	}
	l.step()
	go l.run()
}

// step waits for one arrival and serves it.
func (l *incomingLoop) step() {
	adopt := l.adopted
	if l.p != nil {
		adopt = nil
	}
	p := l.p
	select {
	case nc, ok := <-l.chans:
		if !ok {
			l.chans = nil
			return
		}
		l.dispatch(nc)
	case r, ok := <-l.reqs:
		if !ok {
			l.reqs = nil
			return
		}
		l.global(r)
	case in := <-l.targetIn:
		l.t, l.targetIn = in, nil
	case nc, ok := <-l.t.chans:
		if !ok {
			l.t.chans = nil
			return
		}
		refuseTargetChannel(nc)
	case r, ok := <-l.t.reqs:
		if !ok {
			l.t.reqs = nil
			return
		}
		refuseTargetRequest(r)
	case l.p = <-adopt:
	case r, ok := <-p.clientC():
		p.client(r, ok)
	case r, ok := <-p.targetC():
		p.target(r, ok)
	case <-p.roomC():
	case <-p.endedC():
		p.sealed()
	}
	if l.p != nil && !l.p.live() {
		l.released(l.p)
		l.p = nil
	}
}
