package gateway

import (
	"sync"

	"golang.org/x/crypto/ssh"
)

// reqQueueMax is how many requests one direction of a session may have
// waiting to be passed on; past it, the session's loop stops reading that
// side (x/crypto then holds its requests, and past its own 16 the side's
// connection), as a blocked reader did before.
const reqQueueMax = 16

// reqQueue passes one direction's channel requests on, in order, without
// making the loop that hands them over wait for the other side's reply. A
// goroutine runs only while requests are queued, so an idle session has
// none; the loop that serves both sides of a session then never waits for
// a reply from one side while the other side waits for it to read (see
// sessionReqs).
type reqQueue struct {
	send func(*ssh.Request) // passes one request on and answers it
	// room is signalled (without blocking) when the queue drops below
	// reqQueueMax, so a loop that stopped reading can read again. A
	// session's two queues share it: a signal only wakes the loop, which
	// checks full for both sides again.
	room chan struct{}

	// mu protects the following.
	mu      sync.Mutex
	q       []*ssh.Request
	running bool
	closed  bool
	drained func() // called once, after close, when the last request was passed on
}

// newReqQueue makes a queue that passes requests on with send and signals
// room (1-buffered) when it has room again.
func newReqQueue(send func(*ssh.Request), room chan struct{}) *reqQueue {
	return &reqQueue{send: send, room: room}
}

// full reports whether the queue holds reqQueueMax requests.
func (q *reqQueue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.q) >= reqQueueMax
}

// add queues r and starts the queue's goroutine if none runs.
func (q *reqQueue) add(r *ssh.Request) {
	q.mu.Lock()
	q.q = append(q.q, r)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go q.run()
	}
}

// close says no request will be added; drained is called once every
// queued request has been passed on (at once if none is queued).
func (q *reqQueue) close(drained func()) {
	q.mu.Lock()
	q.closed, q.drained = true, drained
	idle := !q.running
	q.mu.Unlock()
	if idle {
		drained()
	}
}

func (q *reqQueue) run() {
	for {
		q.mu.Lock()
		if len(q.q) == 0 {
			q.running = false
			drained := q.drained
			if !q.closed {
				drained = nil
			}
			q.mu.Unlock()
			if drained != nil {
				drained()
			}
			return
		}
		r := q.q[0]
		q.q[0] = nil
		q.q = q.q[1:]
		wasFull := len(q.q)+1 >= reqQueueMax
		q.mu.Unlock()
		if wasFull {
			select {
			case q.room <- struct{}{}:
			default:
			}
		}
		q.send(r)
	}
}
