package gateway

import (
	"context"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// proxyJump terminates "ssh -J gateway login@target": the direct-tcpip
// channel to target carries a whole SSH connection, which the gateway serves
// itself with a host certificate for the target name (signed by the host CA),
// authenticating the user again. The inner connection is then handled exactly
// like a direct one, so it is policy-checked and recorded.
func (c *clientConn) proxyJump(nc ssh.NewChannel) {
	var p directTCPIP
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "gatehouse: malformed forwarding request")
		return
	}
	// OpenSSH lowercases the host name it checks the certificate against.
	name := strings.ToLower(p.Host)
	rt, err := c.s.resolve(c.ctx, name)
	if err != nil {
		c.audit(audit.Event{Type: audit.EventSessionDenied, Target: name, Reason: err.Error(),
			Details: map[string]any{"mode": "proxyjump"}})
		nc.Reject(ssh.ConnectionFailed, "gatehouse: "+err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	conn := &chanConn{Channel: ch, out: newJumpWriter(ch), local: c.sc.LocalAddr(), remote: c.sc.RemoteAddr()}
	hc, hctx, finish := c.s.startHandshake(c.ctx, conn)
	in, err := c.s.handshake(hctx, hc, []string{name}, true)
	finish()
	if err != nil {
		c.s.log.Debug("proxyjump inner handshake failed", "conn", c.id, "target", name, "err", err)
		ch.Close()
		return
	}
	if in.pr.User != c.pr.User {
		c.s.log.Warn("proxyjump: inner user differs from outer", "outer", c.pr.User, "inner", in.pr.User)
		in.sc.Close()
		return
	}
	ctx, cancel := context.WithCancelCause(c.ctx)
	info := connInfo{pr: in.pr, addr: in.addr, mode: "proxyjump", remote: c.remote, clientVersion: string(in.sc.ClientVersion())}
	inner := &clientConn{connInfo: info, s: c.s, sc: in.sc,
		id: newID(), ctx: ctx, cancel: cancel, resolved: rt, sessions: map[*session]struct{}{},
		served: make(chan struct{}), targetIn: make(chan targetIncoming, 1),
		adopted: make(chan *sessionReqs, 1)}
	c.mu.Lock()
	if c.inner == nil {
		c.inner = map[*clientConn]struct{}{}
	}
	c.inner[inner] = struct{}{}
	c.mu.Unlock()
	inner.serve(in.chans, in.reqs, func() {
		c.mu.Lock()
		delete(c.inner, inner)
		c.mu.Unlock()
		cancel(nil)
	})
}

// jumpChunk is the most data the gateway writes to a channel of a
// ProxyJump inner connection at once. The inner connection travels inside
// the outer direct-tcpip channel, whose packets carry at most 32 KiB
// (OpenSSH's default for it); a full 32 KiB inner data packet plus its
// header, padding and MAC (at most 128 bytes with any cipher and MAC the
// gateway offers) would not fit and go out as two outer packets — a 32 KiB
// one and a ~40-byte one, each encrypted, MACed and written with its own
// syscall. Writing a little less keeps it one outer packet per inner one.
const jumpChunk = 32<<10 - 128

// writeJumpChunks writes p to w in jumpChunk pieces.
func writeJumpChunks(w io.Writer, p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), jumpChunk)
		m, err := w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// chanConn presents an SSH channel as a net.Conn for the inner connection.
// Its writes go through a jumpWriter (the outer channel's encryption on its
// own goroutine).
type chanConn struct {
	ssh.Channel
	out           *jumpWriter
	local, remote net.Addr
}

func (c *chanConn) Write(p []byte) (int, error) { return c.out.Write(p) }

// Close sends what is queued, then closes the channel.
func (c *chanConn) Close() error {
	c.out.flush(jumpDrainWait)
	return c.Channel.Close()
}

func (c *chanConn) LocalAddr() net.Addr                { return c.local }
func (c *chanConn) RemoteAddr() net.Addr               { return c.remote }
func (c *chanConn) SetDeadline(t time.Time) error      { return nil }
func (c *chanConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *chanConn) SetWriteDeadline(t time.Time) error { return nil }
