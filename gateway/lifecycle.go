package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// endCause is why a session ended: the cause its context is cancelled with.
// reason is what the audit log and the session row record; notice, when not
// empty, is the line the user sees on stderr.
type endCause struct {
	reason string
	notice string
	// kill ends the target's processes too (HUP, then KILL): set for
	// revocations (lock, terminate, TTL, idle, failed recording), never
	// for a client that went away or a gateway going down — those look to
	// the target exactly as a vanished OpenSSH client does.
	kill bool
}

func (e *endCause) Error() string { return e.reason }

var (
	// errDisconnected ends a session whose client closed the channel or
	// vanished: nothing is shown, nothing is signalled.
	errDisconnected = &endCause{reason: "client disconnected"}
	// errShutdown ends sessions when the gateway shuts down.
	errShutdown = &endCause{reason: "the gateway is shutting down",
		notice: "gatehouse: session ended: the gateway is shutting down"}
)

// revoked is the cause for a session the gateway ends on purpose: the user
// sees reason and the target's processes are ended.
func revoked(reason string) *endCause {
	return &endCause{reason: reason, notice: "gatehouse: session ended: " + reason, kill: true}
}

// lost is the cause for a session whose target went away.
func (s *session) lost() *endCause {
	t := s.c.addr.Target
	return &endCause{reason: fmt.Sprintf("connection to %s lost", t),
		notice: fmt.Sprintf("gatehouse: the connection to %s was lost", t)}
}

// asEndCause turns any cancellation cause into an endCause.
func asEndCause(err error) *endCause {
	var ec *endCause
	if errors.As(err, &ec) {
		return ec
	}
	if err == nil || errors.Is(err, context.Canceled) {
		return errDisconnected
	}
	return &endCause{reason: err.Error(), notice: "gatehouse: session ended: " + err.Error()}
}

// Teardown bounds: each step waits at most this long for the other side.
const (
	clientWriteGrace = time.Second     // a notice or the exit status to a client that does not read
	signalGrace      = time.Second     // the target to act on HUP, and on the cleanup command
	closeGrace       = 2 * time.Second // the target to confirm the channel close
	// connTeardown bounds how long a cancelled connection waits for its
	// sessions to tell their users and seal before it is closed.
	connTeardown = clientWriteGrace*2 + signalGrace*3 + closeGrace + time.Second
)

// teardown ends a cancelled session: it tells the user why, ends the
// target's processes for a revocation, closes the target channel (and the
// target connection when the whole client connection is ending, so sshd
// hangs up as it does for a vanished client), and waits a bounded time for
// the target to confirm. It never sends a signal for a client that left.
func (s *session) teardown(cause error, relayDone <-chan struct{}) {
	ec := asEndCause(cause)
	if ec.notice != "" {
		s.notice(ec.notice)
	}
	// sshd refuses signals to subsystems (sftp-server ends at EOF).
	if ec.kill && !strings.HasPrefix(s.kind, "subsystem:") {
		// Bounded: a target that stops answering cannot hold the teardown.
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			s.endTargetProcesses(relayDone)
		}()
		waitOr(ended, 3*signalGrace)
	}
	s.tch.Close()
	if !ec.kill {
		// (After a signal the connection is closed by clientConn.serve
		// once every session has had its say, so no signal is cut off.)
		if s.own != nil {
			s.own.Close()
		} else if s.c.ctx.Err() != nil {
			s.c.closeBackend()
		}
	}
	waitOr(relayDone, closeGrace)
}

// endTargetProcesses ends the processes of a revoked session on the target.
// First HUP to the session's process group, as a terminal hangup would;
// sshd refuses signals for logins it runs without privilege separation
// (root), so if HUP is refused or not enough, the gateway runs
// killByConnection on the same target connection — unless the connection's
// certificate forces a command (that exec would run the forced command) or
// other sessions share the connection (they would be killed too).
func (s *session) endTargetProcesses(relayDone <-chan struct{}) {
	if ok, _ := s.tch.SendRequest("signal", true, ssh.Marshal(struct{ Signal string }{"HUP"})); ok && waitOr(relayDone, signalGrace) {
		return
	}
	c := s.c
	if c.resolved.cfg.Kind == "docker" || s.own != nil || c.liveSessions() > 1 {
		// (s.own is a command session's connection: its certificate
		// forces the approved command, so nothing else can run there.)
		return
	}
	ch, reqs, err := c.backend.OpenChannel("session", nil)
	if err != nil {
		c.s.log.Warn("could not end the session's processes on the target", "session", s.id, "err", err)
		return
	}
	defer ch.Close()
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for r := range reqs {
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}()
	if ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Value string }{killByConnection})); err != nil || !ok {
		c.s.log.Warn("the target refused the cleanup command", "session", s.id, "err", err)
		return
	}
	ch.CloseWrite()
	go io.Copy(io.Discard, ch)
	waitOr(exited, signalGrace)
	waitOr(relayDone, signalGrace)
	c.s.log.Info("ended the revoked session's processes on the target", "session", s.id, "target", c.addr.Target)
}

// killByConnection kills every process of this SSH connection on the
// target — those carrying its SSH_CONNECTION (client address and port are
// the gateway's, so the value is unique to this connection) — except the
// shell running it. One grep (GNU grep's -z) reads every environment, so it
// stays quick on a loaded host; kill is the shell's builtin. It kills only
// what the login itself may kill.
const killByConnection = `c="SSH_CONNECTION=$SSH_CONNECTION"; ` +
	`for p in $(grep -lzxF -- "$c" /proc/[0-9]*/environ 2>/dev/null); do ` +
	`p=${p#/proc/}; p=${p%/environ}; [ "$p" != "$$" ] && kill -KILL "$p" 2>/dev/null; done; exit 0`

// waitOr reports whether done closed within d.
func waitOr(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// writeClient runs fn, which writes to the client channel, under the
// session's write lock, waiting at most d: a client that stops reading
// cannot hold up a teardown (fn then finishes or fails when the connection
// closes).
func (s *session) writeClient(d time.Duration, fn func()) bool {
	done := make(chan struct{})
	go func() {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		fn()
		close(done)
	}()
	return waitOr(done, d)
}

// notice writes a one-line message to the client's stderr, waiting at most
// clientWriteGrace.
func (s *session) notice(msg string) {
	s.writeClient(clientWriteGrace, func() {
		fmt.Fprintf(s.ch.Stderr(), "\r\n%s\r\n", msg)
	})
}

// noticeAsync writes a notice without waiting (for callers that must not
// block, such as Shutdown telling every session).
func (s *session) noticeAsync(msg string) {
	if !s.started.Load() {
		return
	}
	go s.notice(msg)
}

// arm cancels the session on recording failure, session TTL or idle
// timeout — with timers and callbacks rather than a goroutine per session.
// (Connection-wide ends — lock, shutdown, client gone — reach the session
// through its parent context.) disarm stops them.
func (s *session) arm() (disarm func()) {
	opts := s.decision.Options
	var stops []func() bool
	if opts.MaxSessionTTL > 0 {
		t := time.AfterFunc(opts.MaxSessionTTL, func() {
			s.cancel(revoked(fmt.Sprintf("maximum session length %s reached", opts.MaxSessionTTL)))
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
			s.cancel(revoked(fmt.Sprintf("idle for %s", idle)))
		})
		mu.Unlock()
		stops = append(stops, func() bool { mu.Lock(); defer mu.Unlock(); return t.Stop() })
	}
	stops = append(stops, s.armCertExpiry()...)
	s.rec.OnFail(func() {
		if s.ctx.Err() != nil {
			return
		}
		if s.c.s.cfg.RecordingFailOpen {
			s.c.s.log.Error("recording failed, session continues (recording.fail_open)", "session", s.id, "err", s.rec.Err())
			return
		}
		s.cancel(revoked(fmt.Sprintf("the recording could not be written (%v)", s.rec.Err())))
	})
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// certWarning is how long before the user certificate ends the user is told
// that the session will end with it.
const certWarning = time.Minute

// armCertExpiry warns the user a minute before their certificate ends and
// ends the session when it does.
func (s *session) armCertExpiry() []func() bool {
	exp := s.c.pr.Expires
	if exp.IsZero() {
		return nil
	}
	var stops []func() bool
	now := s.c.s.now()
	if warn := exp.Add(-certWarning).Sub(now); warn > 0 {
		t := time.AfterFunc(warn, func() {
			s.notice(fmt.Sprintf("gatehouse: your certificate expires at %s UTC; this session ends then (run gatehouse login for a new one)",
				exp.UTC().Format("15:04:05")))
		})
		stops = append(stops, t.Stop)
	}
	t := time.AfterFunc(exp.Sub(now), func() { s.cancel(revoked("your certificate expired")) })
	return append(stops, t.Stop)
}
