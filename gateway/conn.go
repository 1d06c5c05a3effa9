package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/target"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// connInfo is what a connection is, computed once when it authenticates
// and never derived again: who, from where, with which client, asking for
// what. It never changes afterwards.
type connInfo struct {
	pr            principal
	addr          Address // login and target; for a ProxyJump inner connection, the jump target
	mode          string  // direct | proxyjump | menu
	remote        string  // client IP:port of the outer TCP connection
	clientVersion string
}

// clientConn is one authenticated client connection (outer, or the inner
// connection of a ProxyJump).
type clientConn struct {
	connInfo
	s      *Server
	sc     *ssh.ServerConn
	id     string // connection id; session channels add a suffix
	ctx    context.Context
	cancel context.CancelCauseFunc

	resolved   resolvedTarget
	resolveErr error

	// rmu protects reachD and reachOK: the connection's decision (see reach).
	rmu     sync.Mutex
	reachD  policy.Decision
	reachOK bool

	backendOnce sync.Once
	backend     target.Conn
	backendErr  error
	certSerial  uint64
	// commandConns counts the own target connections of command-restricted
	// sessions (see dialCommand).
	commandConns atomic.Int32

	served chan struct{} // closed when serve returns
	// targetIn carries the shared target connection's unasked channel
	// opens and requests to serve's loop (buffered: sent once, by the dial).
	targetIn chan targetIncoming
	// adopted carries a started session's requests to serve's loop (see
	// adopt; buffered: sent only while the loop holds none).
	adopted chan *sessionReqs

	// mu protects the following.
	mu       sync.Mutex
	sessions map[*session]struct{}
	forwards map[*grantedForward]struct{} // port forwards allowed only by a just-in-time grant
	inner    map[*clientConn]struct{}     // ProxyJump connections carried by this one (made by the first)
	nSession int
	// loopHolds is set while serve's loop serves (or is about to serve) a
	// session's requests, loopEnded once it returned (see adopt).
	loopHolds, loopEnded bool
	// wg counts the dispatched channels until they are done (a session's
	// until after).
	wg sync.WaitGroup
}

// resolvedTarget is a target address resolved against the configuration.
type resolvedTarget struct {
	cfg       Target
	container string // docker container for docker targets
	pol       policy.Target
}

func newID() string {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// handle runs one TCP connection from accept to close, in a goroutine of
// its own; Serve adopted nc (s.wg, s.raw) and hangUp lets go of it.
//
// An authenticated connection is served on a fresh goroutine (serveConn).
// The handshake grows this goroutine's stack (authentication, policy, the
// database), and the runtime gives a grown stack back only by halves, one
// per garbage collection, and only while the goroutine uses under a quarter
// of it; one that exits gives it back at once. serve's loop then moves to a
// fresh goroutine after each arrival for the same reason (serveIncoming).
func (s *Server) handle(nc net.Conn) {
	c, chans, reqs := s.authenticate(nc)
	if c == nil {
		s.hangUp(nc)
		return
	}
	go s.serveConn(nc, c, chans, reqs)
}

// serveConn serves an authenticated connection until it closes (see handle).
func (s *Server) serveConn(nc net.Conn, c *clientConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	c.serve(chans, reqs, func() {
		c.cancel(nil)
		s.hangUp(nc)
	})
}

// hangUp closes a connection Serve adopted and lets go of it.
func (s *Server) hangUp(nc net.Conn) {
	nc.Close()
	s.forgetRaw(nc)
	s.wg.Done()
}

// authenticate admits a TCP connection and runs its SSH handshake. It
// returns the authenticated connection and its channel opens and global
// requests, or nil if the connection was refused or the handshake failed.
//
//go:noinline
func (s *Server) authenticate(nc net.Conn) (*clientConn, <-chan ssh.NewChannel, <-chan *ssh.Request) {
	remote := nc.RemoteAddr().String()
	host, _, _ := net.SplitHostPort(remote)
	release, ok := s.admit(host)
	if !ok {
		s.log.Warn("ssh connection refused: too many unauthenticated connections", "remote", remote)
		return nil, nil, nil
	}
	defer release()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	// Large reads while streaming (see bufConn), deadline, lifted while an
	// approval waits.
	hc, hctx, finish := s.startHandshake(ctx, newBufConn(nc))
	in, err := s.handshake(hctx, hc, s.hostNames(), false)
	finish()
	if err != nil {
		cancel(nil)
		s.log.Debug("ssh handshake failed", "remote", remote, "err", err)
		return nil, nil, nil
	}
	release()
	return s.newClientConn(ctx, cancel, in, remote), in.chans, in.reqs
}

// authed is a connection that completed the SSH handshake, with what
// authentication learned: who (the principal that authenticated) and what
// they ask for (the address, parsed once).
type authed struct {
	sc    *ssh.ServerConn
	chans <-chan ssh.NewChannel
	reqs  <-chan *ssh.Request
	pr    principal
	addr  Address
}

// handshake runs the SSH server handshake with client authentication.
func (s *Server) handshake(ctx context.Context, nc net.Conn, hostNames []string, inner bool) (*authed, error) {
	st := &authState{inner: innerTarget(hostNames, inner)}
	cfg, err := s.authConfig(ctx, st, hostNames, inner)
	if err != nil {
		return nil, err
	}
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return nil, err
	}
	pr, err := st.principal(sc.Permissions)
	if err == nil {
		var addr Address
		if addr, err = st.address(sc.User()); err == nil {
			a := &authed{sc: sc, chans: chans, reqs: reqs, pr: *pr, addr: addr}
			// x/crypto keeps the ServerConfig, whose callbacks hold st, and
			// the Permissions for the connection's life; authentication is
			// over and a has what they named: an idle connection need not
			// keep them.
			*st = authState{}
			sc.Permissions = nil
			return a, nil
		}
	}
	sc.Close()
	return nil, err
}

func (s *Server) hostNames() []string {
	if len(s.cfg.HostNames) > 0 {
		return s.cfg.HostNames
	}
	return []string{"localhost", "127.0.0.1", "::1"}
}

// newClientConn makes the connection's one connection-info value: who,
// from where, asking for what — and, for a direct connection, the target
// resolved and the connection's decision (see reach).
func (s *Server) newClientConn(ctx context.Context, cancel context.CancelCauseFunc, in *authed, remote string) *clientConn {
	info := connInfo{pr: in.pr, addr: in.addr, mode: "menu", remote: remote, clientVersion: string(in.sc.ClientVersion())}
	if in.addr.Direct() {
		info.mode = "direct"
	}
	c := &clientConn{connInfo: info, s: s, sc: in.sc, id: newID(), ctx: ctx, cancel: cancel,
		sessions: map[*session]struct{}{}, served: make(chan struct{}),
		targetIn: make(chan targetIncoming, 1), adopted: make(chan *sessionReqs, 1)}
	if in.addr.Direct() {
		c.resolved, c.resolveErr = s.resolve(ctx, in.addr.Target)
	}
	return c
}

// resolve looks up a target name ("db-1" or "docker:web-1").
func (s *Server) resolve(ctx context.Context, name string) (resolvedTarget, error) {
	if cname, ok := strings.CutPrefix(name, "docker:"); ok {
		host, found := s.defaultDockerHost()
		if !found || s.cfg.Docker == nil {
			return resolvedTarget{}, fmt.Errorf("no Docker host is configured for %q", name)
		}
		rt := resolvedTarget{cfg: host, container: cname, pol: policy.Target{Name: name, Kind: "docker", Labels: host.Labels}}
		return s.withContainerLabels(ctx, rt)
	}
	t, ok := s.target(name)
	if !ok {
		return resolvedTarget{}, fmt.Errorf("unknown target %q (ssh to the gateway without a target to list yours)", name)
	}
	rt := resolvedTarget{cfg: t, pol: t.Policy()}
	if t.Kind == "docker" {
		if s.cfg.Docker == nil {
			return resolvedTarget{}, fmt.Errorf("target %q is a container but container access is not enabled", name)
		}
		rt.container = t.Container
		return s.withContainerLabels(ctx, rt)
	}
	return rt, nil
}

func (s *Server) withContainerLabels(ctx context.Context, rt resolvedTarget) (resolvedTarget, error) {
	labels, err := s.cfg.Docker.Labels(ctx, rt.cfg, rt.container)
	if err != nil {
		return resolvedTarget{}, containerError(rt.container, err)
	}
	if labels == nil {
		labels = map[string]string{}
	}
	rt.pol.ContainerLabels = labels
	return rt, nil
}

func (s *Server) defaultDockerHost() (Target, bool) {
	for _, t := range s.targetList() {
		if t.Kind == "docker" && t.Container == "" {
			return t, true
		}
	}
	return Target{}, false
}

// serve dispatches the connection's channels and answers its global
// requests — and the shared target connection's unasked ones, and its first
// session's channel requests — in one loop (serveIncoming), which hands
// itself from goroutine to goroutine; after is called once the connection
// has closed and its channels are done (served is closed), on the loop's
// last goroutine. serve returns once the first arrival has been served.
func (c *clientConn) serve(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, after func()) {
	stop, ok := c.startServing()
	if !ok {
		close(c.served)
		after()
		return
	}
	serveIncoming(chans, reqs, c.targetIn, c.adopted, c.dispatchAsync, c.globalRequest, c.released,
		func(t targetIncoming, unread bool, held *sessionReqs) {
			c.endServing(t, unread, held)
			stop()
			c.s.track(c, false)
			close(c.served)
			after()
		})
}

// startServing registers the connection with the server (false once the
// server is shutting down: the connection is closed) and starts what runs
// beside serve's loop; stop ends the connection-context callback.
//
//go:noinline
func (c *clientConn) startServing() (stop func() bool, ok bool) {
	if !c.s.track(c, true) {
		c.sc.Close()
		return nil, false
	}
	// A cancelled connection (lock, shutdown) lets its sessions tell their
	// users and seal first, for a bounded time, then hangs up.
	stop = context.AfterFunc(c.ctx, c.closeAfterSessions)
	if c.mode == "direct" && c.reach().Allowed {
		// Reach the target while the client opens its channel.
		go c.dialBackend()
	}
	return stop, true
}

// endServing winds the connection down once serve's loop has returned: a
// session's requests it still held get a goroutine of their own, the
// target's unasked requests are refused until it closes, and it returns
// once every channel is done and the target connection closed.
//
//go:noinline
func (c *clientConn) endServing(t targetIncoming, unread bool, held *sessionReqs) {
	c.mu.Lock()
	c.loopEnded = true
	c.mu.Unlock()
	// Session requests the loop held, or was being handed.
	select {
	case p := <-c.adopted:
		held = p
	default:
	}
	if held != nil {
		go func() {
			held.loop()
			held.s.afterRequests(held.runDone)
		}()
	}
	c.cancel(errDisconnected)
	// The target may still ask while the sessions end.
	if t.chans != nil || t.reqs != nil {
		go serveTargetIncoming(t.chans, t.reqs)
	}
	c.wg.Wait()
	c.closeBackend()
	if unread {
		// Dialled after the loop ended (closeBackend waited for the dial,
		// which has sent by now): drain it until it has closed.
		select {
		case t := <-c.targetIn:
			go serveTargetIncoming(t.chans, t.reqs)
		default:
		}
	}
}

// dispatchAsync serves a channel the client opened in a goroutine of its
// own (serve's loop must not block).
func (c *clientConn) dispatchAsync(nc ssh.NewChannel) {
	c.wg.Add(1)
	go c.dispatch(nc)
}

// liveSessions is the number of sessions on this connection.
func (c *clientConn) liveSessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// closeBackend closes the target connection once any dial in flight has
// returned; the target then sees what it sees when an OpenSSH client
// vanishes.
func (c *clientConn) closeBackend() {
	c.backendOnce.Do(func() {})
	if c.backend != nil {
		c.backend.Close()
	}
}

// closeAfterSessions closes the client connection once every session (and
// every ProxyJump connection inside it) has ended, or after connTeardown.
func (c *clientConn) closeAfterSessions() {
	c.mu.Lock()
	var waits []<-chan struct{}
	for s := range c.sessions {
		waits = append(waits, s.finished)
	}
	for in := range c.inner {
		waits = append(waits, in.served)
	}
	c.mu.Unlock()
	t := time.NewTimer(connTeardown)
	defer t.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-t.C:
			c.sc.Close()
			return
		}
	}
	c.sc.Close()
}

// adopt hands a started session's requests to serve's loop, and reports
// whether it took them: it serves one session's at a time, the first
// (usually the only one) of the connection.
func (c *clientConn) adopt(p *sessionReqs) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loopHolds || c.loopEnded || c.adopted == nil {
		return false
	}
	c.loopHolds = true
	c.adopted <- p
	return true
}

// released is called by serve's loop when an adopted session's requests
// have ended; the session is ended in a goroutine of its own (it waits for
// the seal) and the loop can adopt another.
func (c *clientConn) released(p *sessionReqs) {
	c.mu.Lock()
	c.loopHolds = false
	c.mu.Unlock()
	go p.s.afterRequests(p.runDone)
}

// dispatch serves one channel the client opened, and calls c.wg.Done when
// it is done with it (a session: once after ran).
func (c *clientConn) dispatch(nc ssh.NewChannel) {
	if nc.ChannelType() == "session" && c.mode != "menu" {
		c.session(nc)
		return
	}
	defer c.wg.Done()
	switch nc.ChannelType() {
	case "session":
		c.menu(nc)
	case "direct-tcpip":
		if c.mode == "menu" {
			c.proxyJump(nc)
			return
		}
		c.forward(nc)
	default:
		nc.Reject(ssh.UnknownChannelType, fmt.Sprintf("gatehouse: channel type %q is not supported", nc.ChannelType()))
	}
}

// globalRequest answers a connection-level request: keepalives get a reply,
// remote forwarding (ssh -R) is refused and audited.
func (c *clientConn) globalRequest(r *ssh.Request) {
	if r.Type == "tcpip-forward" {
		c.audit(audit.Event{Type: audit.EventForwardDenied, Reason: "remote port forwarding (ssh -R) is not allowed",
			Details: map[string]any{"kind": "remote"}})
	}
	if r.WantReply {
		r.Reply(false, nil)
	}
}

// decide asks policy once about one request on this connection: its
// target and login, and command ("" for a shell, a subsystem or a forward).
// The decision is passed down to whatever serves the request.
func (c *clientConn) decide(command string) policy.Decision {
	return c.s.cfg.Policy.Check(policy.Request{User: c.pr.User, Groups: c.pr.Groups,
		Target: c.resolved.pol, Login: c.addr.Login, Command: command})
}

// reach is the connection's decision: may this user reach login@target at
// all (without a command restriction), and with which options. It decides
// what no single request can: whether the target connection shared by the
// connection's sessions may be dialled ahead of the first request, and
// with which certificate options; and the agent-forwarding answer given
// before a session's request. It is made once, when the connection is
// served; a refusal is asked again next time (a just-in-time grant may have
// been approved since), an allowance is kept. Every request still gets its
// own decision (decide), so a reload or an expired grant refuses requests
// at once.
func (c *clientConn) reach() policy.Decision {
	if c.resolveErr != nil {
		return policy.Decision{Reason: c.resolveErr.Error()}
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if !c.reachOK || !c.reachD.Allowed {
		c.reachD, c.reachOK = c.decide(""), true
	}
	return c.reachD
}

// notifyShutdown tells every live session that the gateway is going down,
// without waiting for any client.
func (c *clientConn) notifyShutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.sessions {
		s.noticeAsync("gatehouse: " + errShutdown.reason + "; this session will end soon")
	}
}

// audit appends an event about this connection, filling in who and from where.
func (c *clientConn) audit(ev audit.Event) error {
	ev.User, ev.UserIssuer, ev.UserSubject = c.pr.User, c.pr.Issuer, c.pr.Subject
	ev.ClientAddr, ev.ClientVersion = c.remote, c.clientVersion
	ev.KeyFingerprint, ev.CertSerial = c.pr.Fingerprint, c.pr.Serial
	if ev.Target == "" {
		ev.Target, ev.Login = c.addr.Target, c.addr.Login
	}
	err := c.s.cfg.Audit.Append(context.WithoutCancel(c.ctx), ev)
	if err != nil {
		c.s.log.Error("audit append failed", "type", ev.Type, "user", ev.User, "err", err)
	}
	return err
}

// containerError turns a Docker failure into the line the user sees.
func containerError(name string, err error) error {
	switch {
	case errors.Is(err, target.ErrContainerNotFound):
		return fmt.Errorf("container %q not found", name)
	case errors.Is(err, target.ErrContainerNotRunning):
		return fmt.Errorf("container %q is not running", name)
	case errors.Is(err, target.ErrUnreachable):
		return fmt.Errorf("cannot reach the Docker Engine for container %q", name)
	}
	return fmt.Errorf("container %q: %v", name, err)
}
