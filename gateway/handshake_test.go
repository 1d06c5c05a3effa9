package gateway

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestHandshakeConnGuardsOnlyTheHandshake: a read that fails during the
// handshake ends the handshake's context (the client has gone); once the
// handshake is finished the connection keeps neither its deadline timer nor
// the context's cancel, a failed read still fails, and holds taken
// before or after finish neither panic nor restart the deadline.
func TestHandshakeConnGuardsOnlyTheHandshake(t *testing.T) {
	s := &Server{authCtx: context.Background()}
	s.cfg.HandshakeTimeout = time.Hour

	a, b := net.Pipe()
	h, ctx, finish := s.startHandshake(context.Background(), a)
	b.Close()
	if _, err := h.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a closed pipe succeeded")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, errClientGone) {
		t.Fatalf("a failed read during the handshake: cause %v, want %v", cause, errClientGone)
	}
	finish()

	a, b = net.Pipe()
	defer a.Close()
	h, ctx, finish = s.startHandshake(context.Background(), a)
	release := holdHandshake(ctx)
	finish()
	release() // a hold released after finish must not restart the deadline
	holdHandshake(ctx)()
	if h.timer != nil || h.cancel.Load() != nil {
		t.Fatal("a finished handshake still keeps its deadline timer or its context's cancel")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
		t.Fatalf("finish: cause %v, want %v", cause, context.Canceled)
	}
	b.Close()
	if _, err := h.Read(make([]byte, 1)); err == nil { // and does not panic on the dropped cancel
		t.Fatal("read from a closed pipe succeeded")
	}
}
