package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/target"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("gateway: server closed")

// Auditor is the part of the audit log the gateway uses. Append returns only
// once the event is durable; an error makes the gateway fail closed.
type Auditor interface {
	Append(ctx context.Context, ev recorder.Event) error
}

// Recorder starts session recordings.
type Recorder interface {
	Start(info RecordingInfo) (Recording, error)
}

// RecordingInfo describes a session about to be recorded.
type RecordingInfo struct {
	SessionID, User, Target, Login string
	Start                          time.Time
	Cols, Rows                     int
	Term                           string
	Command                        string // exec command; "" for a shell
	Interactive                    bool   // a terminal was requested
	// OnCommand receives each command the recorder detects (may be called
	// from the recorder's goroutines).
	OnCommand func(text, source string, offset time.Duration)
}

// Recording is one session's recording, written as the session runs.
type Recording interface {
	ID() string
	Output(p []byte) error
	Input(p []byte) error
	Resize(cols, rows int) error
	Exec(cmd string)
	// OnFail registers fn to be called (in its own goroutine) when writing
	// fails (disk full, quota); Err says why.
	OnFail(fn func())
	Err() error
	// Close seals the recording; complete is false if anything was lost.
	Close(reason string) (sha256 string, complete bool, err error)
}

// DockerDialer reaches containers; nil refuses docker targets.
type DockerDialer interface {
	Dial(ctx context.Context, t config.Target, container, login string) (target.Conn, error)
	Labels(ctx context.Context, t config.Target, container string) (map[string]string, error)
}

// Approver completes logins of plain (uncertified) keys through the browser
// and checks TOTP codes typed at the ssh prompt. Nil disables both: then
// only Gatehouse certificates are accepted.
type Approver interface {
	// Reuse returns the identity approved for this key fingerprint within
	// the approval window.
	Reuse(keyFingerprint string) (auth.Identity, bool)
	// Begin starts an approval and returns the code and URL to show.
	Begin(ctx context.Context, keyFingerprint, clientAddr, clientVersion string) (code, url string, wait func(context.Context) (auth.Identity, error), err error)
	// VerifyTOTP checks a code typed at the ssh prompt.
	VerifyTOTP(ctx context.Context, user, code string) error
}

// Config configures a Server. Zero values deny or take the documented default.
type Config struct {
	Authority *auth.Authority // required
	Policy    *policy.Engine  // required
	Targets   []config.Target
	Audit     Auditor                // required
	Sessions  *recorder.SessionStore // required
	Recorder  Recorder               // nil refuses every session (fail closed)
	// RecordingFailOpen keeps sessions running when recording fails.
	// Zero (false) ends them.
	RecordingFailOpen bool
	// NewFileTap itemises sftp operations for the audit log; nil means
	// sftp sessions are recorded as sessions without per-file events.
	NewFileTap func(onOp func(FileOp)) FileTap
	Docker     DockerDialer // nil refuses docker targets
	Approver   Approver     // nil: certificates only
	Logger     *slog.Logger // nil means slog.Default()

	HandshakeTimeout  time.Duration // zero means 30s
	MaxUnauthPerIP    int           // zero means 10
	TargetDialTimeout time.Duration // zero means 10s
	SessionCertTTL    time.Duration // zero means 2m
	Ciphers           []string      // client side; nil means x/crypto defaults
	// HostNames are the principals of the gateway's host certificate (the
	// names clients type). Nil means localhost, 127.0.0.1 and ::1.
	HostNames []string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Server is the SSH gateway.
type Server struct {
	cfg     Config
	log     *slog.Logger
	targets map[string]config.Target

	// mu protects the following.
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*clientConn]struct{}
	unauth    map[string]int // per-IP count of connections not yet authenticated
	closed    bool
	wg        sync.WaitGroup
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Authority == nil || cfg.Policy == nil || cfg.Audit == nil || cfg.Sessions == nil {
		return nil, errors.New("gateway: Authority, Policy, Audit and Sessions are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.HandshakeTimeout, 30*time.Second)
	def(&cfg.TargetDialTimeout, 10*time.Second)
	def(&cfg.SessionCertTTL, 2*time.Minute)
	if cfg.MaxUnauthPerIP <= 0 {
		cfg.MaxUnauthPerIP = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, targets: map[string]config.Target{},
		listeners: map[net.Listener]struct{}{}, conns: map[*clientConn]struct{}{}, unauth: map[string]int{},
	}
	for _, t := range cfg.Targets {
		s.targets[t.Name] = t
	}
	return s, nil
}

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Serve accepts connections on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("gateway: accept: %w", err)
		}
		backoff = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
		}()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// admit counts an unauthenticated connection from ip, refusing it past the
// per-IP limit. release must be called once it authenticates or ends.
func (s *Server) admit(ip string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.unauth[ip] >= s.cfg.MaxUnauthPerIP {
		return nil, false
	}
	s.unauth[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.unauth[ip]--; s.unauth[ip] <= 0 {
				delete(s.unauth, ip)
			}
		})
	}, true
}

func (s *Server) track(c *clientConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			return false
		}
		s.conns[c] = struct{}{}
		return true
	}
	delete(s.conns, c)
	return true
}

// Shutdown stops accepting, tells every live session the gateway is shutting
// down, waits for sessions to end until ctx is done, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.closeListeners()
	for _, c := range conns {
		c.notifyShutdown()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.close(errShutdown)
		}
		<-done
		return ctx.Err()
	}
}

// Close closes all listeners and connections at once.
func (s *Server) Close() error {
	for _, c := range s.closeListeners() {
		c.close(errShutdown)
	}
	s.wg.Wait()
	return nil
}

func (s *Server) closeListeners() []*clientConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// LiveSessions returns the number of authenticated client connections.
func (s *Server) LiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// hostSigner returns the gateway host key with its host certificate.
func (s *Server) hostSigner(ctx context.Context, principals []string) (ssh.Signer, error) {
	return s.cfg.Authority.HostCertSigner(ctx, principals)
}

// Terminate ends the live session with this id, telling the user why. It
// reports whether the session was found.
func (s *Server) Terminate(sessionID, reason string) bool {
	s.mu.Lock()
	conns := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		var found *session
		for ss := range c.sessions {
			if ss.id == sessionID {
				found = ss
			}
		}
		c.mu.Unlock()
		if found != nil {
			found.end(errors.New(reason))
			return true
		}
	}
	return false
}
