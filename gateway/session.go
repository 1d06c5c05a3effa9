package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/target"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// session relays one SSH session channel between the client and the target,
// through the recorder.
//
// Lifecycle: the target's own session channel is opened first and the
// client's channel accepted only then (a refusal is passed back as a refused
// open, so ControlMaster falls back as with OpenSSH). The client's setup
// requests (pty-req, env) are validated and held; at shell/exec/subsystem the
// policy decides, the recording and the session row are written and the held
// requests replayed; then data and requests flow both ways until the target
// closes the channel or the session's context is cancelled.
//
// The session has one life: ctx. Everything that ends a session — the client
// going away, a lock, a terminate, the TTL, the idle timeout, a shutdown, the
// target dying, a failed recording — cancels ctx with an *endCause, whose
// text is what the user sees and the audit records. Whichever of run's two
// callbacks comes first then tears down, within bounded time (see teardown).
type session struct {
	c   *clientConn
	id  string
	ch  ssh.Channel
	tch ssh.Channel // nil until the target accepted a channel

	ctx    context.Context
	cancel context.CancelCauseFunc
	// wmu serialises writes, CloseWrite and exit requests on ch: x/crypto
	// channels race when stdout, stderr and a notice write concurrently
	// with CloseWrite. It is the session's own lock, never held while
	// waiting on another session.
	wmu sync.Mutex

	// Setup state, touched only by the request loop before start.
	pty     *ptyRequest
	env     []*ssh.Request
	agent   bool        // client asked for agent forwarding and a role allows it
	started atomic.Bool // set once tch and the recording exist; read by other goroutines
	kind    string
	command string
	treqs   <-chan *ssh.Request

	// own is this session's own target connection when its command is
	// restricted (see dialCommand); nil when it shares the connection's.
	own        target.Conn
	certSerial uint64 // of the per-session certificate on the target connection

	rec      Recording
	recMu    sync.Mutex // serialises recorder writes from stdout and stderr
	tap      FileTap
	decision policy.Decision
	counted  bool      // holds one of its user's max_sessions slots (request loop only)
	began    time.Time // when the session row was written (see sessionRow)

	bytesIn, bytesOut atomic.Int64
	lastActive        atomic.Int64 // unix nanos

	// mu protects the following.
	mu         sync.Mutex
	exitStatus *int
	exitSignal string

	tdone      chan struct{} // closed when the target channel's requests end
	finished   chan struct{} // closed when the session has been sealed (or never started)
	finishOnce sync.Once

	// What run and relay keep while the session runs, in the session
	// itself rather than in closures and small objects of their own: an
	// idle session's memory is mostly many small long-lived objects, and
	// each shares its memory page with setup's garbage (see
	// docs/performance.md). Set by run before ready is closed.
	ready       chan struct{} // closed once run has set the fields below
	runDone     chan struct{} // closed once the session has ended (run's result)
	relayDone   chan struct{} // closed once the target's output has all been relayed
	ended       atomic.Bool   // set by the first of run's two ways to end
	left        atomic.Int32  // output copiers still running
	stopCtx     func() bool
	disarm      func()
	out, errOut outCopier
	in          inCopier
	bufs        [3][relayBufMin]byte // the copiers' first buffers
}

// ptyRequest is the RFC 4254 pty-req payload.
type ptyRequest struct {
	Term     string
	Cols     uint32
	Rows     uint32
	WidthPx  uint32
	HeightPx uint32
	Modes    string
}

type windowChange struct {
	Cols, Rows, WidthPx, HeightPx uint32
}

type exitStatusMsg struct{ Status uint32 }

type exitSignalMsg struct {
	Signal     string
	CoreDumped bool
	Error      string
	Lang       string
}

// envAllowed lists the environment variables a client may set on a target.
// Everything else (LD_*, PATH, BASH_ENV, ...) is dropped.
func envAllowed(name string) bool {
	switch name {
	case "LANG", "LANGUAGE", "TZ", "COLORTERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "EDITOR", "VISUAL", "PAGER":
		return true
	case "GIT_PROTOCOL": // git protocol v2 negotiation (git over ssh)
		return true
	}
	return strings.HasPrefix(name, "LC_") || strings.HasPrefix(name, "GIT_AUTHOR_") || strings.HasPrefix(name, "GIT_COMMITTER_")
}

func (c *clientConn) newSession() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nSession++
	id := c.id
	if c.nSession > 1 {
		id = fmt.Sprintf("%s-%d", c.id, c.nSession)
	}
	ctx, cancel := context.WithCancelCause(c.ctx)
	s := &session{c: c, id: id, ctx: ctx, cancel: cancel, tdone: make(chan struct{}), finished: make(chan struct{})}
	c.sessions[s] = struct{}{}
	return s
}

func (c *clientConn) forget(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sessions, s)
}

// session serves one client session channel: the target's channel is opened
// first, and a refusal there is passed back as a refused open. It calls
// c.wg.Done once the session is over (see after), which may be after it
// returned: a started session's requests may be served by the connection's
// loop (see serve).
func (c *clientConn) session(nc ssh.NewChannel) {
	s := c.newSession()
	if oe := s.openTarget(); oe != nil {
		s.abandon()
		nc.Reject(oe.Reason, oe.Message)
		s.after()
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		s.abandon()
		s.after()
		return
	}
	s.ch = ch
	s.touch()
	s.serve(reqs)
}

// openTarget opens the target's session channel before the client's channel
// is accepted. It returns a refusal only when the target itself refused the
// open (its MaxSessions, for example); a policy refusal or an unreachable
// target is reported on the accepted channel at shell/exec time instead,
// in one line the user can read.
func (s *session) openTarget() *ssh.OpenChannelError {
	c := s.c
	if !c.reach().Allowed {
		return nil
	}
	backend, err := c.dialBackend()
	if err != nil {
		return nil
	}
	tch, treqs, err := backend.OpenChannel("session", nil)
	if err != nil {
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) {
			return oe
		}
		return &ssh.OpenChannelError{Reason: ssh.ConnectionFailed,
			Message: fmt.Sprintf("gatehouse: cannot open a session on %s: %v", c.addr.Target, err)}
	}
	s.tch, s.treqs = tch, treqs
	return nil
}

// abandon releases a session that never ran.
func (s *session) abandon() {
	s.cancel(errDisconnected)
	if s.tch != nil {
		s.tch.Close()
	}
	close(s.finished)
}

func (s *session) touch() { s.lastActive.Store(time.Now().UnixNano()) }

// serve handles client requests until the session starts (or the client
// closes the channel or goes away first). Then the session's requests both
// ways (sessionReqs) are handed to the connection's loop, which serves them
// without a goroutine of the session's own; when it already serves another
// session's, this goroutine serves them. Once they have ended the session's
// context is cancelled and, once run has sealed it, after runs.
func (s *session) serve(reqs <-chan *ssh.Request) {
	// Ended before it started (a lock during setup): hang up the client.
	stop := context.AfterFunc(s.ctx, func() {
		if !s.started.Load() {
			s.ch.Close()
		}
	})
	p := s.setupRequests(reqs, func(r *ssh.Request) (<-chan *ssh.Request, <-chan struct{}, bool) {
		if !s.setup(r) {
			return nil, nil, false
		}
		return s.treqs, s.run(), true
	})
	stop()
	if p == nil {
		s.cancel(errDisconnected)
		if s.tch != nil {
			s.tch.Close()
		}
		s.ch.Close()
		close(s.finished)
		s.after()
		return
	}
	if s.c.adopt(p) {
		return
	}
	p.loop()
	s.afterRequests(p.runDone)
}

// setupRequests gives the client's requests to start until it reports that
// it started the session, and returns the started session's requests (the
// target channel's and the channel closed once the session is sealed, as
// start reported them); nil if the client's requests ended first.
func (s *session) setupRequests(reqs <-chan *ssh.Request,
	start func(*ssh.Request) (treqs <-chan *ssh.Request, runDone <-chan struct{}, ok bool)) *sessionReqs {
	for r := range reqs {
		if treqs, runDone, ok := start(r); ok {
			return newSessionReqs(s, reqs, treqs, runDone)
		}
	}
	return nil
}

// afterRequests ends a started session whose requests have ended: its
// context is cancelled (the client has gone, unless the session already
// ended) and, once run has sealed it, after runs.
func (s *session) afterRequests(runDone <-chan struct{}) {
	s.cancel(errDisconnected)
	<-runDone
	s.after()
}

// after is the last step of every session, once it is sealed (or never
// started) and its requests have ended: it closes the session's own target
// connection, gives back its max_sessions slot, and leaves the connection.
func (s *session) after() {
	c := s.c
	s.closeOwn()
	if s.counted {
		c.s.releaseSession(c.pr.User)
	}
	c.forget(s)
	c.wg.Done()
}

// setup handles a request before the session has started. It reports whether
// the session was started.
func (s *session) setup(r *ssh.Request) bool {
	switch r.Type {
	case "pty-req":
		var p ptyRequest
		if err := ssh.Unmarshal(r.Payload, &p); err != nil || p.Cols > 10000 || p.Rows > 10000 {
			r.Reply(false, nil)
			return false
		}
		s.pty = &p
		r.Reply(true, nil)
	case "env":
		var e struct{ Name, Value string }
		if ssh.Unmarshal(r.Payload, &e) == nil && envAllowed(e.Name) && len(s.env) < 64 {
			s.env = append(s.env, r)
			r.Reply(true, nil)
			return false
		}
		r.Reply(false, nil)
	case "shell", "exec", "subsystem":
		return s.start(r)
	case "auth-agent-req@openssh.com":
		s.agent = s.c.reach().Options.AgentForwarding
		r.Reply(s.agent, nil)
	case "window-change":
		var w windowChange
		if s.pty != nil && ssh.Unmarshal(r.Payload, &w) == nil {
			s.pty.Cols, s.pty.Rows = w.Cols, w.Rows
		}
	default:
		// x11-req and anything unknown are refused.
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
	return false
}

// start decides, records and opens the target side for shell/exec/subsystem.
// On refusal the client gets a one-line reason on stderr and exit status 1.
func (s *session) start(r *ssh.Request) bool {
	s.kind, s.command = r.Type, ""
	if r.Type != "shell" {
		var p struct{ Value string }
		if err := ssh.Unmarshal(r.Payload, &p); err != nil {
			r.Reply(false, nil)
			return false
		}
		s.command = p.Value
		if r.Type == "subsystem" {
			s.kind, s.command = "subsystem:"+p.Value, ""
		}
	}
	r.Reply(true, nil)
	if msg, ok := s.authorize(); !ok {
		s.refuse(msg)
		return false
	}
	if err := s.begin(); err != nil {
		s.closeOwn()
		s.refuse(err.Error())
		return false
	}
	s.started.Store(true)
	return true
}

// authorize runs the policy for this request and audits refusals.
func (s *session) authorize() (string, bool) {
	c := s.c
	if c.resolveErr != nil {
		c.audit(audit.Event{Type: audit.EventSessionDenied, Reason: c.resolveErr.Error(), SessionID: s.id})
		return c.resolveErr.Error(), false
	}
	cmd := s.command
	s.decision = c.decide(cmd)
	if !s.decision.Allowed {
		c.audit(audit.Event{Type: audit.EventSessionDenied, Reason: s.decision.Reason, SessionID: s.id,
			Details: map[string]any{"kind": s.kind, "command": cmd}})
		return fmt.Sprintf("access denied: %s%s", s.decision.Reason, c.requestHint(cmd)), false
	}
	for _, w := range s.decision.Warnings {
		c.audit(audit.Event{Type: audit.EventCommandWarn, Reason: w, SessionID: s.id,
			Details: map[string]any{"kind": s.kind, "command": cmd}})
	}
	if strings.HasPrefix(s.kind, "subsystem:") {
		if s.kind != "subsystem:sftp" {
			return fmt.Sprintf("subsystem %q is not available through the gateway", strings.TrimPrefix(s.kind, "subsystem:")), false
		}
		if !s.decision.Options.SFTP {
			reason := fmt.Sprintf("file transfer (sftp/scp) to %s is not allowed by your roles", c.addr.Target)
			c.audit(audit.Event{Type: audit.EventSessionDenied, Reason: reason, SessionID: s.id,
				Details: map[string]any{"kind": s.kind}})
			return reason, false
		}
	}
	if msg, ok := c.s.reserveSession(c.ctx, c.pr.User, c.s.cfg.Policy.MaxSessions(c.pr.User, c.pr.Groups)); !ok {
		c.audit(audit.Event{Type: audit.EventSessionDenied, Reason: msg, SessionID: s.id,
			Details: map[string]any{"kind": s.kind, "command": cmd}})
		return msg, false
	}
	s.counted = true
	return "", true
}

// refuse tells the client why in one line and ends the channel with status 1.
func (s *session) refuse(msg string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	fmt.Fprintf(s.ch.Stderr(), "gatehouse: %s\r\n", msg)
	s.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{1}))
	s.ch.CloseWrite()
	s.ch.Close()
}

// begin writes the session row, starts the recording and the audit event,
// then (if openTarget did not already) opens the target channel — all before
// the first byte is relayed.
func (s *session) begin() error {
	c := s.c
	if s.tch != nil && s.decision.ForceCommand() != "" {
		// A restricted command never runs on the shared connection.
		s.tch.Close()
		s.tch, s.treqs = nil, nil
	}
	backend := c.backend
	if s.tch == nil {
		b, err := s.targetConn()
		if err != nil {
			return err
		}
		backend = b
	} else {
		s.certSerial = c.certSerial
	}
	if err := s.startRecording(); err != nil {
		return err
	}
	if s.tch == nil {
		tch, treqs, err := backend.OpenChannel("session", nil)
		if err != nil {
			s.finish(fmt.Errorf("cannot open a session on %s: %v", c.addr.Target, err))
			return fmt.Errorf("cannot open a session on %s: %s", c.addr.Target, openErrMessage(err))
		}
		s.tch, s.treqs = tch, treqs
	}
	tch := s.tch
	// The target's requests are served (sessionReqs) once the session has
	// started; until then nothing reads them.
	if err := s.replaySetup(); err != nil {
		tch.Close()
		go ssh.DiscardRequests(s.treqs)
		s.finish(err)
		return err
	}
	ok, err := tch.SendRequest(s.kindRequest())
	if err != nil || !ok {
		tch.Close()
		go ssh.DiscardRequests(s.treqs)
		err = fmt.Errorf("%s refused the %s request", c.addr.Target, strings.SplitN(s.kind, ":", 2)[0])
		if c.resolved.cfg.Kind == "docker" && s.kind == "subsystem:sftp" {
			err = fmt.Errorf("file transfer (sftp/scp) into containers is not available; use ssh %s 'cat > FILE' < FILE", c.addr.Target)
		} else if c.resolved.cfg.Kind == "docker" {
			err = fmt.Errorf("%s could not start the command as %q (does the user exist in the container?)", c.addr.Target, c.addr.Login)
		}
		s.finish(err)
		return err
	}
	return nil
}

// targetConn returns the target connection for this session: its own, with
// the approved command as force-command, when policy restricts commands;
// else the connection's shared one.
func (s *session) targetConn() (target.Conn, error) {
	fc := s.decision.ForceCommand()
	if fc == "" {
		conn, err := s.c.dialBackend()
		s.certSerial = s.c.certSerial
		return conn, err
	}
	if s.kind != "exec" {
		// Policy never approves a command for a shell or subsystem.
		return nil, fmt.Errorf("access denied: %s is not a command", s.kind)
	}
	conn, serial, err := s.c.dialCommand(s.id, fc)
	s.own, s.certSerial = conn, serial
	return conn, err
}

// closeOwn closes the session's own target connection, if it has one.
// s.own is written only before the session starts, so other goroutines may
// read it; closing twice is harmless.
func (s *session) closeOwn() {
	if s.own != nil {
		s.own.Close()
	}
}

func (s *session) kindRequest() (string, bool, []byte) {
	switch {
	case s.kind == "shell":
		return "shell", true, nil
	case s.kind == "exec" && s.decision.ForceCommand() != "":
		// The canonical form of what was approved; the target's sshd runs
		// the certificate's force-command whatever this says.
		return "exec", true, ssh.Marshal(struct{ Value string }{s.decision.ForceCommand()})
	case s.kind == "exec":
		return "exec", true, ssh.Marshal(struct{ Value string }{s.command})
	}
	return "subsystem", true, ssh.Marshal(struct{ Value string }{strings.TrimPrefix(s.kind, "subsystem:")})
}

// replaySetup sends the held pty-req and env requests to the target.
func (s *session) replaySetup() error {
	if s.pty != nil {
		ok, err := s.tch.SendRequest("pty-req", true, ssh.Marshal(s.pty))
		if err != nil || !ok {
			return fmt.Errorf("%s refused a terminal (pty) for %s", s.c.addr.Target, s.c.addr.Login)
		}
	}
	for _, e := range s.env {
		s.tch.SendRequest("env", false, e.Payload)
	}
	if s.agent && s.decision.Options.AgentForwarding {
		// Answered from the connection's decision before the request; the
		// request's own decision has the last word.
		s.tch.SendRequest("auth-agent-req@openssh.com", false, nil)
	}
	return nil
}

func openErrMessage(err error) string {
	var oe *ssh.OpenChannelError
	if errors.As(err, &oe) {
		return oe.Message
	}
	return err.Error()
}

// run starts relaying data; when the target side is done or the session's
// context is cancelled, whichever comes first, the session is ended (end)
// and the returned channel closed. No goroutine waits for either while the
// session runs: the last output copier to finish ends it (relayEnded), or a
// cancellation does, in a goroutine of its own (context.AfterFunc).
func (s *session) run() <-chan struct{} {
	s.runDone = make(chan struct{})
	s.ready = make(chan struct{})
	s.disarm = s.arm()
	// relayDone and stopCtx are set before either way to end can run: both
	// wait for ready.
	s.relayDone = s.relay()
	s.stopCtx = context.AfterFunc(s.ctx, s.cancelled)
	close(s.ready)
	return s.runDone
}

// relayEnded is called by the last output copier to end.
func (s *session) relayEnded() {
	<-s.ready
	s.endRun(false)
}

// cancelled is called once the session's context is cancelled.
func (s *session) cancelled() {
	<-s.ready
	s.endRun(true)
}

func (s *session) endRun(cancelled bool) {
	if !s.ended.CompareAndSwap(false, true) {
		return // the other one ends it
	}
	defer close(s.runDone)
	defer s.disarm()
	s.stopCtx()
	s.end(cancelled, s.relayDone)
}

// end answers the client and seals the session once the relay is done
// (cancelled false) or the session's context is cancelled (true).
func (s *session) end(cancelled bool, relayDone <-chan struct{}) {
	var cause error
	if !cancelled {
		if s.ctx.Err() == nil && !s.hasExit() {
			lost := s.lost()
			s.cancel(lost)
			s.notice(lost.notice)
			cause = lost
		}
	} else {
		cause = context.Cause(s.ctx)
		s.teardown(cause, relayDone)
	}
	s.answer(cause)
	// The client has its output and exit status: let it go before the
	// recording is sealed (sealing reconstructs commands, which takes a
	// moment for long sessions).
	s.ch.Close()
	s.finish(cause)
	close(s.finished)
}

// relay starts copying both ways; the returned channel is closed once the
// target has sent all its output and closed its channel, and then
// relayEnded is called.
//
// The second output copier to end waits for the target's requests, closes
// the channel and calls relayEnded itself: no goroutine per session just to
// wait.
func (s *session) relay() chan struct{} {
	done := make(chan struct{})
	s.left.Store(2)
	s.out = outCopier{s: s, src: s.tch, done: done, buf: relayBuf{b: s.bufs[0][:]}}
	s.errOut = outCopier{s: s, src: s.tch.Stderr(), stderr: true, done: done, buf: relayBuf{b: s.bufs[1][:]}}
	s.in = inCopier{s: s, guard: s.newLineGuard(), buf: relayBuf{b: s.bufs[2][:]}}
	go s.out.run()
	go s.errOut.run()
	go s.in.run()
	return done
}

func (s *session) hasExit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitStatus != nil || s.exitSignal != ""
}

// answer sends the client its exit status — 255 when the session did not
// exit by itself, so an ended session never looks like success — and EOF.
// Nothing is sent to a client that has gone.
func (s *session) answer(cause error) {
	if errors.Is(cause, errDisconnected) {
		return
	}
	noExit := !s.hasExit()
	if noExit {
		s.setExit(255)
	}
	s.writeClient(clientWriteGrace, func() {
		if noExit {
			s.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{255}))
		}
		s.ch.CloseWrite()
	})
}

// clientWriter writes to the client's stdout (ext 0) or stderr (ext 1)
// under the session's write lock.
type clientWriter struct {
	s   *session
	ext uint32
}

func (w clientWriter) Write(p []byte) (int, error) {
	w.s.wmu.Lock()
	defer w.s.wmu.Unlock()
	dst := io.Writer(w.s.ch)
	if w.ext != 0 {
		dst = w.s.ch.Stderr()
	}
	if w.s.c.mode == "proxyjump" {
		return writeJumpChunks(dst, p)
	}
	return dst.Write(p)
}

// The copiers hand themselves to a fresh goroutine after each read.
//
// A copier handles what it read on the goroutine that read it: recording,
// command tracking and the other side's encryption run deep, so that
// goroutine's stack grows to 8 KiB on the first keystroke or prompt. Parked
// in Read, a copier needs under 1 KiB, but the runtime halves a stack at a
// GC only when what is in use plus its 800-byte reserve is under a quarter
// of it — never from 4 KiB down to the 2 KiB minimum — so an idle session
// would keep 4 KiB per copier for good. Handing the loop to a new goroutine
// (which starts at the minimum when no other goroutine needs more) and
// letting the grown one exit returns its stack at once: 2 KiB per copier
// per idle session, for one goroutine start (~1 µs) per read, which happens
// after the data was passed on, so it adds nothing to the echo path.
// There is never more than one goroutine per copier, so order is kept.

// growStack grows the calling goroutine's stack to 8 KiB in one step while
// it is shallow: a copier fresh from its hand-off starts at 2 KiB, and
// growing a deep stack by doubling copies it several times, walking every
// frame each time (a profile showed copystack at 17% of the gateway's CPU
// per keystroke). One copy of a three-frame stack costs little.
//
//go:noinline
func growStack() byte {
	var pad [growPad]byte
	return pad[growIdx]
}

// growPad is sized so that the copier's frames (under 1 KiB), the pad and
// the runtime's guard need just under 8 KiB.
const growPad = 6 << 10

var growIdx = 0 // a variable, so the pad is not optimised away

// outCopier copies target output (stdout, or stderr when stderr is set) to
// the client and the recording.
type outCopier struct {
	s      *session
	src    io.Reader
	stderr bool
	done   chan struct{} // the relay's: closed once both output copiers ended
	buf    relayBuf
}

func (c *outCopier) run() {
	n, err := c.src.Read(c.buf.b)
	if n > 0 {
		growStack()
		c.s.touch()
		c.s.bytesOut.Add(int64(n))
		dst := clientWriter{c.s, 0}
		if c.stderr {
			c.s.recordStderr(c.buf.b[:n])
			dst.ext = 1
		} else {
			c.s.recordOutput(c.buf.b[:n])
		}
		if _, werr := dst.Write(c.buf.b[:n]); werr != nil {
			// The client is gone: end as OpenSSH does when a client
			// vanishes (no signal to the target).
			c.s.cancel(errDisconnected)
			c.end()
			return
		}
		c.buf.grow(n)
	}
	if err != nil {
		c.end()
		return
	}
	go c.run()
}

// end is called once per output copier; the last one waits for the
// target's requests to end, closes done and ends the session.
func (c *outCopier) end() {
	if c.s.left.Add(-1) == 0 {
		<-c.s.tdone
		close(c.done)
		c.s.relayEnded()
	}
}

// relayBuf starts small, so thousands of idle interactive sessions cost
// little (three per session: a keystroke or a short prompt fits 128 bytes;
// a longer prompt takes two reads), grows when reads fill it, so bulk
// transfers take fewer trips through the recorder and the channel (128 KiB
// within ten reads), and drops back to the small size when a read uses
// under a sixteenth of it, so a session that had a burst of output does not
// keep up to 128 KiB while it idles.
type relayBuf struct{ b []byte }

const (
	relayBufMin = 128
	relayBufMax = 128 << 10
)

// grow resizes the buffer after a read of n bytes into it.
func (r *relayBuf) grow(n int) {
	switch {
	case n == len(r.b) && len(r.b) < relayBufMax:
		r.b = make([]byte, 2*len(r.b))
	case n < len(r.b)/16 && len(r.b) > relayBufMin:
		r.b = make([]byte, relayBufMin)
	}
}

// recordStderr records the target's stderr (sftp has none worth parsing).
func (s *session) recordStderr(p []byte) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if s.tap == nil {
		s.rec.Stderr(p)
	}
}

func (s *session) recordOutput(p []byte) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if s.tap != nil {
		s.tap.ServerToClient(p)
		return
	}
	s.rec.Output(p)
}

// inCopier copies client input to the target and the recording (see the
// copiers' note above). The client's EOF is passed on as EOF, exactly as
// an OpenSSH client sends it.
type inCopier struct {
	s     *session
	guard *lineGuard // nil unless command rules apply to typed lines
	buf   relayBuf
}

func (c *inCopier) run() {
	n, err := c.s.ch.Read(c.buf.b)
	if n > 0 {
		growStack()
		c.s.touch()
		c.s.bytesIn.Add(int64(n))
		var werr error
		if c.guard != nil {
			werr = c.guard.forward(c.buf.b[:n])
		} else {
			werr = c.s.sendInput(c.buf.b[:n])
		}
		if werr != nil {
			return
		}
		c.buf.grow(n)
	}
	if err != nil {
		c.s.tch.CloseWrite()
		return
	}
	go c.run()
}

// sendInput records client input (or gives it to the sftp tap) and writes
// it to the target.
func (s *session) sendInput(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	s.recMu.Lock()
	if s.tap != nil {
		s.tap.ClientToServer(p)
	} else {
		s.rec.Input(p)
	}
	s.recMu.Unlock()
	_, err := s.tch.Write(p)
	return err
}

// targetRequest forwards a request from the target (exit-status,
// exit-signal, eow@openssh.com, keepalives) to the client, noting the exit.
func (s *session) targetRequest(r *ssh.Request) {
	if s.ctx.Err() != nil && (r.Type == "exit-status" || r.Type == "exit-signal") {
		// The session was ended; the target's verdict on the ended
		// command is not the user's exit status.
		if r.WantReply {
			r.Reply(false, nil)
		}
		return
	}
	switch r.Type {
	case "exit-status":
		var m exitStatusMsg
		if ssh.Unmarshal(r.Payload, &m) == nil {
			s.setExit(int(m.Status))
		}
	case "exit-signal":
		var m exitSignalMsg
		if ssh.Unmarshal(r.Payload, &m) == nil {
			s.mu.Lock()
			s.exitSignal = m.Signal
			s.mu.Unlock()
		}
	}
	ok, _ := s.ch.SendRequest(r.Type, r.WantReply, r.Payload)
	if r.WantReply {
		r.Reply(ok, nil)
	}
}

func (s *session) setExit(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exitStatus == nil {
		s.exitStatus = &code
	}
}

// inSession forwards a client request once the session runs.
func (s *session) inSession(r *ssh.Request) {
	switch r.Type {
	case "window-change":
		var w windowChange
		if ssh.Unmarshal(r.Payload, &w) == nil && w.Cols <= 10000 && w.Rows <= 10000 {
			s.recMu.Lock()
			s.rec.Resize(int(w.Cols), int(w.Rows))
			s.recMu.Unlock()
		}
	case "signal", "keepalive@openssh.com", "eow@openssh.com", "break":
	default:
		if r.WantReply {
			r.Reply(false, nil)
		}
		return
	}
	ok, _ := s.tch.SendRequest(r.Type, r.WantReply, r.Payload)
	if r.WantReply {
		r.Reply(ok, nil)
	}
}
