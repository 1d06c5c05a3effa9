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
// ended), so that session needs no goroutine of its own for them. It returns
// once the client connection has closed, with what of the target's is still
// open (nil channels when none), whether targetIn was never read, and the
// session requests it still held, if any.
func serveIncoming(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, targetIn <-chan targetIncoming,
	adopted <-chan *sessionReqs, dispatch func(ssh.NewChannel), global func(*ssh.Request),
	released func(*sessionReqs)) (rest targetIncoming, unread bool, held *sessionReqs) {
	var t targetIncoming
	var p *sessionReqs
	for chans != nil || reqs != nil {
		adopt := adopted
		if p != nil {
			adopt = nil
		}
		select {
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			dispatch(nc)
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			global(r)
		case in := <-targetIn:
			t, targetIn = in, nil
		case nc, ok := <-t.chans:
			if !ok {
				t.chans = nil
				continue
			}
			refuseTargetChannel(nc)
		case r, ok := <-t.reqs:
			if !ok {
				t.reqs = nil
				continue
			}
			refuseTargetRequest(r)
		case p = <-adopt:
		case r, ok := <-p.clientC():
			p.client(r, ok)
		case r, ok := <-p.targetC():
			p.target(r, ok)
		case <-p.roomC():
		case <-p.endedC():
			p.sealed()
		}
		if p != nil && !p.live() {
			released(p)
			p = nil
		}
	}
	return t, targetIn != nil, p
}
