package gateway

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/recorder"
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
	d := c.check("")
	if !d.Allowed || !d.Options.PortForwarding {
		reason := fmt.Sprintf("port forwarding to %s via %s is not allowed by your roles", dest, c.addr.Target)
		c.audit(recorder.Event{Type: recorder.EventForwardDenied, Reason: reason, Details: details})
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
	if err := c.audit(recorder.Event{Type: recorder.EventForwardStart, Reason: d.Reason, Details: details}); err != nil {
		ch.Close()
		tch.Close()
		return
	}
	start := time.Now()
	in, out := pipeBoth(ch, tch)
	details["bytes_in"], details["bytes_out"] = in, out
	details["duration_ms"] = time.Since(start).Milliseconds()
	c.audit(recorder.Event{Type: recorder.EventForwardEnd, Details: details})
}

// pipeBoth copies a↔b until both directions end, half-closing each side at
// EOF, and returns the bytes copied a→b and b→a.
func pipeBoth(a, b ssh.Channel) (ab, ba int64) {
	var wg sync.WaitGroup
	var n1, n2 atomic.Int64
	cp := func(dst, src ssh.Channel, n *atomic.Int64) {
		defer wg.Done()
		k, _ := io.Copy(dst, src)
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
