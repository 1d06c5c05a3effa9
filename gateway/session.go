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
	"github.com/gatehouse/gatehouse/recorder"
)

// session relays one SSH session channel between the client and the target,
// through the recorder. Lifecycle: the client's setup requests (pty-req, env)
// are validated and held; at shell/exec/subsystem the policy decides, the
// recording and the session row are written, the target channel is opened
// and the held requests replayed; then data and requests flow both ways until
// the target closes the channel or the session is ended.
type session struct {
	c   *clientConn
	id  string
	ch  ssh.Channel
	tch ssh.Channel

	// Setup state, touched only by the request loop before start.
	pty     *ptyRequest
	env     []*ssh.Request
	agent   bool        // client asked for agent forwarding and a role allows it
	started atomic.Bool // set once tch and the recording exist; read by other goroutines
	kind    string
	command string

	// own is this session's own target connection when its command is
	// restricted (see dialCommand); nil when it shares the connection's.
	own        target.Conn
	certSerial uint64 // of the per-session certificate on the target connection

	rec      Recording
	recMu    sync.Mutex // serialises recorder writes from stdout and stderr
	tap      FileTap
	decision policy.Decision
	row      recorder.Session

	bytesIn, bytesOut atomic.Int64
	lastActive        atomic.Int64 // unix nanos

	// mu protects the following.
	mu         sync.Mutex
	exitStatus *int
	exitSignal string
	endCause   error
	ended      chan struct{}
	endOnce    sync.Once
	tdone      chan struct{} // closed when the target channel's requests end
	finishOnce sync.Once
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
	s := &session{c: c, id: id, ended: make(chan struct{}), tdone: make(chan struct{})}
	c.sessions[s] = struct{}{}
	return s
}

func (c *clientConn) forget(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sessions, s)
}

// session serves one client session channel.
func (c *clientConn) session(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	s := c.newSession()
	defer c.forget(s)
	s.ch = ch
	s.touch()
	s.serve(reqs)
}

func (s *session) touch() { s.lastActive.Store(time.Now().UnixNano()) }

// serve handles client requests until the client closes the channel or the
// session has ended and been torn down.
func (s *session) serve(reqs <-chan *ssh.Request) {
	done := make(chan struct{})
	defer func() {
		s.end(errClientClosed)
		if s.started.Load() {
			<-done
		}
		s.ch.Close()
		s.closeOwn()
	}()
	for r := range reqs {
		if s.started.Load() {
			s.inSession(r)
			continue
		}
		if s.setup(r) {
			go func() {
				defer close(done)
				s.run()
			}()
		}
	}
}

var errClientClosed = errors.New("client closed the session")

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
		s.agent = s.c.resolveErr == nil && s.c.check("").Options.AgentForwarding
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
		c.audit(recorder.Event{Type: recorder.EventSessionDenied, Reason: c.resolveErr.Error(), SessionID: s.id})
		return c.resolveErr.Error(), false
	}
	cmd := s.command
	s.decision = c.check(cmd)
	if !s.decision.Allowed {
		c.audit(recorder.Event{Type: recorder.EventSessionDenied, Reason: s.decision.Reason, SessionID: s.id,
			Details: map[string]any{"kind": s.kind, "command": cmd}})
		return fmt.Sprintf("access denied: %s", s.decision.Reason), false
	}
	for _, w := range s.decision.Warnings {
		c.audit(recorder.Event{Type: recorder.EventCommandWarn, Reason: w, SessionID: s.id,
			Details: map[string]any{"kind": s.kind, "command": cmd}})
	}
	if strings.HasPrefix(s.kind, "subsystem:") {
		if s.kind != "subsystem:sftp" {
			return fmt.Sprintf("subsystem %q is not available through the gateway", strings.TrimPrefix(s.kind, "subsystem:")), false
		}
		if !s.decision.Options.SFTP {
			reason := fmt.Sprintf("file transfer (sftp/scp) to %s is not allowed by your roles", c.addr.Target)
			c.audit(recorder.Event{Type: recorder.EventSessionDenied, Reason: reason, SessionID: s.id,
				Details: map[string]any{"kind": s.kind}})
			return reason, false
		}
	}
	return "", true
}

// refuse tells the client why in one line and ends the channel with status 1.
func (s *session) refuse(msg string) {
	fmt.Fprintf(s.ch.Stderr(), "gatehouse: %s\r\n", msg)
	s.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{1}))
	s.ch.CloseWrite()
	s.ch.Close()
}

// begin writes the session row, starts the recording and the audit event,
// then opens the target channel — all before the first byte is relayed.
func (s *session) begin() error {
	c := s.c
	backend, err := s.targetConn()
	if err != nil {
		return err
	}
	if err := s.startRecording(); err != nil {
		return err
	}
	tch, treqs, err := backend.OpenChannel("session", nil)
	if err != nil {
		s.finish(fmt.Errorf("cannot open a session on %s: %v", c.addr.Target, err))
		return fmt.Errorf("cannot open a session on %s: %s", c.addr.Target, openErrMessage(err))
	}
	s.tch = tch
	go s.targetRequests(treqs)
	if err := s.replaySetup(); err != nil {
		tch.Close()
		s.finish(err)
		return err
	}
	ok, err := tch.SendRequest(s.kindRequest())
	if err != nil || !ok {
		tch.Close()
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
func (s *session) closeOwn() {
	if s.own != nil {
		s.own.Close()
		s.own = nil
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
	if s.agent {
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

// run relays data until the target side is done, then seals the session.
func (s *session) run() {
	c := s.c
	var out sync.WaitGroup
	out.Add(2)
	go func() {
		defer out.Done()
		s.copyOut(s.ch, s.tch)
	}()
	go func() {
		defer out.Done()
		s.copyOut(s.ch.Stderr(), s.tch.Stderr())
	}()
	go s.copyIn()
	disarm := s.arm()
	defer disarm()
	out.Wait()
	select {
	case <-s.tdone:
	case <-s.ended:
		// Ended by the gateway: give the target a moment to confirm.
		select {
		case <-s.tdone:
		case <-time.After(3 * time.Second):
		}
	}
	s.mu.Lock()
	noExit := s.exitStatus == nil && s.exitSignal == ""
	lost := noExit && s.endCause == nil
	s.mu.Unlock()
	if lost {
		s.notice(fmt.Sprintf("gatehouse: the connection to %s was lost", c.addr.Target))
		s.endWith(fmt.Errorf("connection to %s lost", c.addr.Target))
	}
	if noExit {
		// Ended by the gateway or lost: never let it look like success.
		s.setExit(255)
		s.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{255}))
	}
	s.ch.CloseWrite()
	s.endWith(nil)
	// The client has its output and exit status: let it go before the
	// recording is sealed (sealing reconstructs commands, which takes a
	// moment for long sessions).
	s.ch.Close()
	s.finish(nil)
}

// copyOut copies target output to the client and the recording.
func (s *session) copyOut(dst io.Writer, src io.Reader) {
	buf := newRelayBuf()
	for {
		n, err := src.Read(buf.b)
		if n > 0 {
			s.touch()
			s.bytesOut.Add(int64(n))
			s.recordOutput(buf.b[:n])
			if _, werr := dst.Write(buf.b[:n]); werr != nil {
				s.tch.Close()
				return
			}
			buf.grow(n)
		}
		if err != nil {
			return
		}
	}
}

// relayBuf starts small, so thousands of idle interactive sessions cost
// little, and grows when reads fill it, so bulk transfers take fewer trips
// through the recorder and the channel.
type relayBuf struct{ b []byte }

const (
	relayBufMin = 4 << 10
	relayBufMax = 128 << 10
)

func newRelayBuf() *relayBuf { return &relayBuf{b: make([]byte, relayBufMin)} }

func (r *relayBuf) grow(n int) {
	if n == len(r.b) && len(r.b) < relayBufMax {
		r.b = make([]byte, 2*len(r.b))
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

// copyIn copies client input to the target and the recording.
func (s *session) copyIn() {
	buf := newRelayBuf()
	for {
		n, err := s.ch.Read(buf.b)
		if n > 0 {
			s.touch()
			s.bytesIn.Add(int64(n))
			s.recMu.Lock()
			if s.tap != nil {
				s.tap.ClientToServer(buf.b[:n])
			} else {
				s.rec.Input(buf.b[:n])
			}
			s.recMu.Unlock()
			if _, werr := s.tch.Write(buf.b[:n]); werr != nil {
				return
			}
			buf.grow(n)
		}
		if err != nil {
			s.tch.CloseWrite()
			return
		}
	}
}

// targetRequests forwards requests from the target (exit-status, exit-signal,
// eow@openssh.com) to the client, noting the exit.
func (s *session) targetRequests(reqs <-chan *ssh.Request) {
	defer close(s.tdone)
	for r := range reqs {
		if s.isEnded() && (r.Type == "exit-status" || r.Type == "exit-signal") {
			// The gateway ended the session; the target's verdict on the
			// killed command is not the user's exit status.
			continue
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

// notice writes a one-line message to the client's stderr.
func (s *session) notice(msg string) {
	fmt.Fprintf(s.ch.Stderr(), "\r\n%s\r\n", msg)
}

// end ends the session with cause (shutdown, recording failure, limit).
func (s *session) end(cause error) {
	if !s.started.Load() {
		return
	}
	if cause != errClientClosed {
		s.notice("gatehouse: session ended: " + cause.Error())
	}
	s.endWith(cause)
	if s.tch != nil {
		// sshd keeps a command running after its channel closes; ask it to
		// kill the command first so an ended session really ends.
		s.tch.SendRequest("signal", false, ssh.Marshal(struct{ Signal string }{"KILL"}))
		s.tch.Close()
	}
}

// isEnded reports whether the gateway has ended the session.
func (s *session) isEnded() bool {
	select {
	case <-s.ended:
		return true
	default:
		return false
	}
}

func (s *session) endWith(cause error) {
	s.endOnce.Do(func() {
		s.mu.Lock()
		s.endCause = cause
		s.mu.Unlock()
		close(s.ended)
	})
}

// arm ends the session on recording failure, session TTL, idle timeout or
// connection end — with timers and callbacks rather than a goroutine per
// session. disarm stops them.
func (s *session) arm() (disarm func()) {
	opts := s.decision.Options
	var stops []func() bool
	if opts.MaxSessionTTL > 0 {
		t := time.AfterFunc(opts.MaxSessionTTL, func() {
			s.end(fmt.Errorf("maximum session length %s reached", opts.MaxSessionTTL))
		})
		stops = append(stops, t.Stop)
	}
	if idle := opts.IdleTimeout; idle > 0 {
		var mu sync.Mutex
		var t *time.Timer
		mu.Lock()
		t = time.AfterFunc(idle, func() {
			if left := idle - time.Since(time.Unix(0, s.lastActive.Load())); left > 0 {
				mu.Lock()
				t.Reset(left)
				mu.Unlock()
				return
			}
			s.end(fmt.Errorf("idle for %s", idle))
		})
		mu.Unlock()
		stops = append(stops, func() bool { mu.Lock(); defer mu.Unlock(); return t.Stop() })
	}
	stops = append(stops, context.AfterFunc(s.c.ctx, func() { s.end(context.Cause(s.c.ctx)) }))
	s.rec.OnFail(func() {
		if s.isEnded() {
			return
		}
		if s.c.s.cfg.RecordingFailOpen {
			s.c.s.log.Error("recording failed, session continues (recording.fail_open)", "session", s.id, "err", s.rec.Err())
			return
		}
		s.end(fmt.Errorf("the recording could not be written (%v)", s.rec.Err()))
	})
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
