package gateway

import (
	"net"
	"sync"
)

// bufConn is a net.Conn whose reads take as much as the socket holds, up to
// bufConnSize, while data is streaming. x/crypto/ssh reads through a 4 KiB
// bufio.Reader: a 32 KiB packet then costs a read for its length, another
// for the rest of the 4 KiB and a third for the remainder, each a syscall
// and often a park in the netpoller. Under a bulk transfer this takes
// several packets per syscall instead.
//
// Idle and interactive connections hold no buffer: a read that did not fill
// what was asked for (a keystroke, an echo) puts the connection back into
// pass-through mode and the buffer back into a pool, so thousands of idle
// sessions cost nothing here. Writes are not touched (x/crypto flushes one
// packet per write, which is what keystroke latency needs).
//
// While a connection is being set up (its first setupAckBytes), every read
// also acknowledges what it read at once (pushAck). An OpenSSH client (and
// sshd on the target leg) runs with Nagle's algorithm until its session is
// interactive, so a small packet sent while the previous one is
// unacknowledged waits for our ACK — which Linux delays by 40 ms when we
// have nothing to send back. The handshake hits that at least twice per leg
// (the key exchange's ECDH message after KEXINIT, the service request after
// NEWKEYS), two legs per session.
type bufConn struct {
	net.Conn
	buf        *[]byte // nil in pass-through mode
	start, end int     // unread bytes are (*buf)[start:end]
	streaming  bool    // the last read filled what was asked for
	setupLeft  int     // bytes still read with an immediate ACK
}

// bufConnSize is the read size while streaming: two full SSH packets.
const bufConnSize = 64 << 10

var bufConnPool = sync.Pool{New: func() any { b := make([]byte, bufConnSize); return &b }}

func newBufConn(c net.Conn) *bufConn { return &bufConn{Conn: c, setupLeft: setupAckBytes} }

// setupAckBytes covers a connection's key exchange, authentication and its
// first session's requests (a few KiB; a ProxyJump connection's inner
// handshake too) and stops well before a bulk transfer would pay a
// setsockopt per read.
const setupAckBytes = 64 << 10

// Read serves buffered bytes first; otherwise it reads straight into p
// (pass-through), or fills the buffer with one large read (streaming).
func (c *bufConn) Read(p []byte) (int, error) {
	if c.start < c.end {
		n := copy(p, (*c.buf)[c.start:c.end])
		c.start += n
		if c.start == c.end {
			c.release()
		}
		return n, nil
	}
	if c.setupLeft > 0 {
		n, err := c.Conn.Read(p)
		c.setupLeft -= n
		// The version line is read a byte at a time; its ACK travels
		// with our KEXINIT.
		if n > 1 {
			pushAck(c.Conn)
		}
		return n, err
	}
	if !c.streaming || len(p) >= bufConnSize {
		n, err := c.Conn.Read(p)
		c.streaming = n == len(p) && n > 0
		return n, err
	}
	if c.buf == nil {
		c.buf = bufConnPool.Get().(*[]byte)
	}
	n, err := c.Conn.Read(*c.buf)
	// Stay streaming only while the socket keeps more than the caller
	// asked for; a short read means the burst is over.
	c.streaming = n > len(p)
	m := copy(p, (*c.buf)[:n])
	c.start, c.end = m, n
	if c.start == c.end {
		c.release()
	}
	return m, err
}

// release returns the drained buffer to the pool.
func (c *bufConn) release() {
	if c.buf != nil {
		bufConnPool.Put(c.buf)
		c.buf, c.start, c.end = nil, 0, 0
	}
}
