package gateway

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// directTCPIP is the RFC 4254 direct-tcpip channel payload.
type directTCPIP struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

// forward serves "ssh -L": the destination is reached from the target (the
// gateway asks the target's sshd to open it), only when a role allows port
// forwarding. Destination, bytes and duration are audited.
func (c *clientConn) forward(nc ssh.NewChannel) {
	var p directTCPIP
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "gatehouse: malformed forwarding request")
		return
	}
	dest := fmt.Sprintf("%s:%d", p.Host, p.Port)
	details := map[string]any{"kind": "local", "destination": dest}
	if c.resolveErr != nil {
		nc.Reject(ssh.ConnectionFailed, "gatehouse: "+c.resolveErr.Error())
		return
	}
	d := c.decide("")
	if !d.Allowed || !d.Options.PortForwarding {
		reason := fmt.Sprintf("port forwarding to %s via %s is not allowed by your roles", dest, c.addr.Target)
		c.audit(audit.Event{Type: audit.EventForwardDenied, Reason: reason, Details: details})
		nc.Reject(ssh.Prohibited, "gatehouse: "+reason)
		return
	}
	backend, err := c.dialBackend()
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, "gatehouse: "+err.Error())
		return
	}
	tch, treqs, err := backend.OpenChannel("direct-tcpip", nc.ExtraData())
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, "gatehouse: "+openErrMessage(err))
		return
	}
	go ssh.DiscardRequests(treqs)
	ch, reqs, err := nc.Accept()
	if err != nil {
		tch.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	if err := c.audit(audit.Event{Type: audit.EventForwardStart, Reason: d.Reason, Details: details}); err != nil {
		ch.Close()
		tch.Close()
		return
	}
	start := time.Now()
	var last atomic.Int64
	last.Store(start.UnixNano())
	touch := func() { last.Store(time.Now().UnixNano()) }
	closeBoth := func() { ch.Close(); tch.Close() }
	idleEnded, disarm := armForwardIdle(d.Options.IdleTimeout, &last, closeBoth)
	gf := c.trackGrantedForward(d, closeBoth)
	in, out := pipeBoth(ch, tch, touch)
	disarm()
	c.untrackForward(gf)
	if idleEnded.Load() {
		details["reason"] = fmt.Sprintf("idle for %s", d.Options.IdleTimeout)
	}
	if gf != nil && gf.ended.Load() {
		details["reason"] = fmt.Sprintf("access grant for role %s expired", strings.Join(d.Granted, ", "))
	}
	details["bytes_in"], details["bytes_out"] = in, out
	details["duration_ms"] = time.Since(start).Milliseconds()
	c.audit(audit.Event{Type: audit.EventForwardEnd, Details: details})
}

// pipeBoth copies a↔b until both directions end, half-closing each side at
// EOF, and returns the bytes copied a→b and b→a.
// touch (may be nil) is called on every chunk either way.
func pipeBoth(a, b ssh.Channel, touch func()) (ab, ba int64) {
	var wg sync.WaitGroup
	var n1, n2 atomic.Int64
	cp := func(dst, src ssh.Channel, n *atomic.Int64) {
		defer wg.Done()
		var r io.Reader = src
		if touch != nil {
			r = activityReader{src, touch}
		}
		k, _ := io.Copy(dst, r)
		n.Store(k)
		dst.CloseWrite()
	}
	wg.Add(2)
	go cp(b, a, &n1)
	go cp(a, b, &n2)
	wg.Wait()
	a.Close()
	b.Close()
	return n1.Load(), n2.Load()
}

// activityReader calls touch whenever data passes.
type activityReader struct {
	r     io.Reader
	touch func()
}

func (a activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.touch()
	}
	return n, err
}

// armForwardIdle calls end once no data passed either way (last, unix
// nanos) for idle — options.idle_timeout applies to forwarded traffic as to
// sessions. Zero idle arms nothing. ended reports whether it fired.
func armForwardIdle(idle time.Duration, last *atomic.Int64, end func()) (ended *atomic.Bool, disarm func()) {
	ended = new(atomic.Bool)
	if idle <= 0 {
		return ended, func() {}
	}
	var mu sync.Mutex
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(idle, func() {
		if left := idle - time.Since(time.Unix(0, last.Load())); left > 0 {
			mu.Lock()
			t.Reset(left)
			mu.Unlock()
			return
		}
		ended.Store(true)
		end()
	})
	return ended, func() { mu.Lock(); defer mu.Unlock(); t.Stop() }
}
