package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// errClientGone is the cause of a handshake context whose client went away.
var errClientGone = errors.New("the client disconnected")

// handshakeConn wraps a connection while the SSH handshake runs. It closes
// the connection when the handshake deadline passes, except while a browser
// approval holds it (a user reading a URL takes longer than a handshake);
// and it ends the handshake's context as soon as a read fails, so a code
// whose client went away dies with it. After finish it is a plain net.Conn.
type handshakeConn struct {
	net.Conn
	// cancel ends the handshake's context; nil once finished. x/crypto
	// reads through the handshakeConn for the connection's life, so what
	// finish drops (this and the timer) is not kept per idle connection.
	cancel  atomic.Pointer[context.CancelCauseFunc]
	timeout time.Duration

	// mu protects the following.
	mu       sync.Mutex
	timer    *time.Timer
	holds    int
	finished bool
}

type handshakeKey struct{}

// startHandshake guards nc for the handshake. The returned context ends when
// the client goes away, the server shuts down or finish is called; it carries
// the guard so an approval can hold the deadline (holdHandshake).
func (s *Server) startHandshake(parent context.Context, nc net.Conn) (*handshakeConn, context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	h := &handshakeConn{Conn: nc, timeout: s.cfg.HandshakeTimeout}
	h.cancel.Store(&cancel)
	h.timer = time.AfterFunc(h.timeout, func() { nc.Close() })
	stopShutdown := context.AfterFunc(s.authCtx, func() { cancel(context.Cause(s.authCtx)) })
	finish := func() {
		h.mu.Lock()
		h.finished = true
		h.timer.Stop()
		h.timer = nil
		h.mu.Unlock()
		h.cancel.Store(nil)
		stopShutdown()
		cancel(nil)
	}
	return h, context.WithValue(ctx, handshakeKey{}, h), finish
}

// Read reads from the connection; a failed read during the handshake means
// the client has gone.
func (h *handshakeConn) Read(p []byte) (int, error) {
	n, err := h.Conn.Read(p)
	if err != nil {
		if cancel := h.cancel.Load(); cancel != nil {
			(*cancel)(errClientGone)
		}
	}
	return n, err
}

// holdHandshake lifts the handshake deadline of the connection behind ctx
// until release is called, which starts a fresh deadline. Without a guard
// in ctx it does nothing.
func holdHandshake(ctx context.Context) (release func()) {
	h, _ := ctx.Value(handshakeKey{}).(*handshakeConn)
	if h == nil {
		return func() {}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.finished {
		return func() {}
	}
	h.holds++
	h.timer.Stop()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.holds--; h.holds == 0 && !h.finished {
				h.timer.Reset(h.timeout)
			}
		})
	}
}
