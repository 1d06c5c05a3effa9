package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
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
	StdinShell                     bool   // a shell without a terminal: stdin lines are commands
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
	// Reuse returns the identity approved for this request's key, source
	// IP and login@target within the approval window.
	Reuse(req auth.ApprovalRequest) (auth.Identity, bool)
	// Begin starts an approval that ends with ctx (the asking connection).
	Begin(ctx context.Context, req auth.ApprovalRequest) (*auth.PendingApproval, error)
	// Remember records the user a key belongs to; KnownUser returns it, so
	// a locked user's key is refused before an approval code is shown.
	Remember(keyFingerprint, user string)
	KnownUser(keyFingerprint string) (string, bool)
	// VerifyTOTP checks a code typed at the ssh prompt.
	VerifyTOTP(ctx context.Context, user, code string) error
}

// LockChecker reports whether a user is locked out.
type LockChecker interface {
	Locked(ctx context.Context, user string) (policy.Lock, bool)
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
	// Locks refuses locked users and ends their live sessions; nil means
	// no locks.
	Locks  LockChecker
	Logger *slog.Logger // nil means slog.Default()

	HandshakeTimeout  time.Duration // zero means 30s
	MaxUnauthPerIP    int           // zero means 10
	TargetDialTimeout time.Duration // zero means 10s
	SessionCertTTL    time.Duration // zero means 2m
	// Ciphers, KeyExchanges, MACs and HostKeyAlgorithms are the SSH
	// algorithms of both legs and the ProxyJump inner server; nil means the
	// config.Default* lists (ssh-audit clean, no SHA-1).
	Ciphers, KeyExchanges, MACs, HostKeyAlgorithms []string
	// LoginPattern is what every target login must match (ssh.login_pattern);
	// nil means config.DefaultLoginPattern.
	LoginPattern *regexp.Regexp
	// HostNames are the principals of the gateway's host certificate (the
	// names clients type). Nil means localhost, 127.0.0.1 and ::1.
	HostNames []string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// OnTargetDial, if set, is told how long connecting to each target took
	// (metrics); nil means nobody is told.
	OnTargetDial func(target string, took time.Duration, err error)
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
	lockQuit  chan struct{}

	// authCtx ends when the server shuts down: logins waiting for a browser
	// approval end with it (see handshake.go).
	authCtx  context.Context
	authStop context.CancelCauseFunc
	failures failureLimiter // auth.failure audit events per source (authlog.go)
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
	s.authCtx, s.authStop = context.WithCancelCause(context.Background())
	if cfg.Locks != nil {
		s.lockQuit = make(chan struct{})
		go s.watchLocks()
	}
	return s, nil
}

// lockPoll is how soon a lock made elsewhere (the CLI, another gateway on
// the same database) ends a locked user's live sessions.
const lockPoll = 5 * time.Second

// watchLocks ends the live sessions of users who became locked.
func (s *Server) watchLocks() {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		select {
		case <-s.lockQuit:
			return
		case <-t.C:
			s.mu.Lock()
			users := map[string]bool{}
			for c := range s.conns {
				users[c.pr.User] = true
			}
			s.mu.Unlock()
			for u := range users {
				if lk, ok := s.cfg.Locks.Locked(context.Background(), u); ok {
					s.TerminateUser(u, "your access was locked: "+lk.Reason)
				}
			}
		}
	}
}

// lockError is the refusal for a locked user, or nil.
func (s *Server) lockError(user string) error {
	if s.cfg.Locks == nil {
		return nil
	}
	if lk, ok := s.cfg.Locks.Locked(context.Background(), user); ok {
		return fmt.Errorf("your access is locked (%s); contact an administrator", lk.Reason)
	}
	return nil
}

// TerminateUser ends every live session of user with reason and returns how
// many it ended.
func (s *Server) TerminateUser(user, reason string) int {
	s.mu.Lock()
	var conns []*clientConn
	for c := range s.conns {
		if c.pr.User == user {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		c.mu.Lock()
		for ss := range c.sessions {
			ss.end(errors.New(reason))
			n++
		}
		c.mu.Unlock()
		c.cancel(errors.New(reason))
	}
	return n
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
	if !s.closed && s.lockQuit != nil {
		close(s.lockQuit)
	}
	s.closed = true
	s.authStop(errShutdown)
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
