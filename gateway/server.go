package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/target"
	"github.com/gatehouse/gatehouse/internal/usererr"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
	"github.com/gatehouse/gatehouse/recorder/cmdline"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("gateway: server closed")

// Auditor is the part of the audit log the gateway uses. Append returns only
// once the event is durable; an error makes the gateway fail closed.
type Auditor interface {
	Append(ctx context.Context, ev audit.Event) error
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
	Stderr(p []byte) error // the stderr stream; with a terminal there is none
	Input(p []byte) error
	// Notice records what the gateway itself wrote to the user's terminal.
	Notice(p []byte) error
	Resize(cols, rows int) error
	Exec(cmd string)
	// OnFail registers fn to be called (in its own goroutine) when writing
	// fails (disk full, quota); Err says why.
	OnFail(fn func())
	Err() error
	// Close seals the recording; complete is false if anything was lost.
	Close(reason string) (sha256 string, complete bool, err error)
	// Streams, after Close, describes the raw streams of a session
	// without a terminal by name (stdout, stderr, stdin); nil otherwise.
	Streams() map[string]StreamSummary
	// Line is what is known of the line being typed in a terminal session
	// (read off the screen as the session runs).
	Line() cmdline.State
}

// StreamSummary describes one raw stream of a session without a terminal:
// every byte that passed is counted and hashed; past
// recording.stream_full_bytes only a prefix (Stored) is kept.
type StreamSummary struct {
	Bytes, Stored int64
	SHA256        string
}

// DockerDialer reaches containers; nil refuses docker targets.
type DockerDialer interface {
	Dial(ctx context.Context, t Target, container, login string) (target.Conn, error)
	Labels(ctx context.Context, t Target, container string) (map[string]string, error)
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
	Authority *auth.Authority        // required
	Policy    *policy.Engine         // required
	Targets   []Target               // resolved at load; see SetTargets
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
	MaxUnauthPerIP    int           // per source IP (per /64 for IPv6); zero means 10
	MaxUnauth         int           // in total; zero means 500
	TargetDialTimeout time.Duration // zero means 10s
	SessionCertTTL    time.Duration // zero means 2m
	// Ciphers, KeyExchanges, MACs and HostKeyAlgorithms are the SSH
	// algorithms of both legs and the ProxyJump inner server; nil means the
	// sshalg.Default* lists (ssh-audit clean, no SHA-1).
	Ciphers, KeyExchanges, MACs, HostKeyAlgorithms []string
	// LoginPattern is what every target login must match (ssh.login_pattern);
	// nil means sshalg.DefaultLoginPattern.
	LoginPattern *regexp.Regexp
	// HostNames are the principals of the gateway's host certificate (the
	// names clients type). Nil means localhost, 127.0.0.1 and ::1.
	HostNames []string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// OnTargetDial, if set, is told how long connecting to each target took
	// (metrics); nil means nobody is told.
	OnTargetDial func(target string, took time.Duration, err error)
	// SessionsElsewhere (optional) counts a user's open sessions on the
	// other live instances sharing the database, so max_sessions holds
	// across a cluster; nil counts this process only.
	SessionsElsewhere func(ctx context.Context, user string) (int, error)
}

// Server is the SSH gateway.
type Server struct {
	cfg Config
	log *slog.Logger

	targets registry // replaced by SetTargets

	// mu protects the following.
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	raw       map[net.Conn]struct{}    // every accepted connection, from accept to close
	conns     map[*clientConn]struct{} // authenticated connections
	unauth    map[string]int           // per-source count of connections not yet authenticated
	perUser   map[string]int           // sessions authorized and not yet over, per user (max_sessions)
	nUnauth   int                      // their total
	closed    bool
	wg        sync.WaitGroup // one per accepted connection
	lockQuit  chan struct{}
	grantQuit chan struct{} // stops watchGrants

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
	if cfg.MaxUnauth <= 0 {
		cfg.MaxUnauth = 500
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger,
		listeners: map[net.Listener]struct{}{}, raw: map[net.Conn]struct{}{}, conns: map[*clientConn]struct{}{}, unauth: map[string]int{}, perUser: map[string]int{},
	}
	if err := s.SetTargets(cfg.Targets); err != nil {
		return nil, err
	}
	s.authCtx, s.authStop = context.WithCancelCause(context.Background())
	if cfg.Locks != nil {
		s.lockQuit = make(chan struct{})
		go s.watchLocks()
	}
	s.grantQuit = make(chan struct{})
	go s.watchGrants(s.grantQuit)
	go s.warmHostCerts()
	return s, nil
}

// warmHostCerts signs the host certificates the gateway presents (its own
// and, for ProxyJump, one per target name) before the first client needs
// them: signing records the certificate in the database, which must not
// hold up a client's banner when the database is busy.
func (s *Server) warmHostCerts() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names := [][]string{s.hostNames()}
	for _, t := range s.targetList() {
		name := t.Name
		names = append(names, []string{strings.ToLower(name)})
	}
	for _, n := range names {
		if _, err := s.hostSigner(ctx, n); err != nil {
			s.log.Warn("host certificate not signed ahead of use", "principals", n, "err", err)
		}
	}
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
		return &usererr.Error{Msg: fmt.Sprintf("your access is locked (%s); contact an administrator", lk.Reason)}
	}
	return nil
}

// TerminateUser ends every live session of user with reason and returns how
// many it ended. The sessions tell their users and end their processes on
// their own goroutines; nothing here waits for a client.
func (s *Server) TerminateUser(user, reason string) int {
	n := 0
	for _, c := range s.liveConns() {
		if c.pr.User != user {
			continue
		}
		c.mu.Lock()
		n += len(c.sessions)
		c.mu.Unlock()
		c.cancel(revoked(reason))
	}
	return n
}

// liveConns returns the authenticated connections.
func (s *Server) liveConns() []*clientConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Serve accepts connections on ln until Shutdown or Close. Temporary accept
// errors (out of file descriptors, for one) are retried with a backoff; the
// gateway never exits because of load.
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
			if !temporaryAcceptError(err) {
				return fmt.Errorf("gateway: accept: %w", err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("ssh accept failed, retrying", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.adopt(nc) {
			nc.Close()
			return ErrServerClosed
		}
		go s.handle(nc) // which lets go of nc (hangUp)
	}
}

// temporaryAcceptError reports whether an accept error will pass by itself:
// descriptor or memory exhaustion, a connection aborted before it was
// accepted, a timeout.
func temporaryAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// adopt tracks a connection from accept; it reports false once the server
// is closed.
func (s *Server) adopt(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.raw[nc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) forgetRaw(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.raw, nc)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// unauthKey is the source an unauthenticated connection is counted
// against: the IPv4 address, or the /64 of an IPv6 address (one host
// commonly holds a whole /64).
func unauthKey(host string) string {
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// admit counts an unauthenticated connection from host, refusing it past the
// per-source limit or the total limit. release must be called once it
// authenticates or ends.
func (s *Server) admit(host string) (release func(), ok bool) {
	key := unauthKey(host)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.unauth[key] >= s.cfg.MaxUnauthPerIP || s.nUnauth >= s.cfg.MaxUnauth {
		return nil, false
	}
	s.unauth[key]++
	s.nUnauth++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.nUnauth--
			if s.unauth[key]--; s.unauth[key] <= 0 {
				delete(s.unauth, key)
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

// shutdownSeal is how long Shutdown, at its deadline, lets ended sessions
// tell their users and seal their recordings before it closes every
// connection.
const shutdownSeal = 300 * time.Millisecond

// Shutdown stops accepting, tells every live session the gateway is
// shutting down, and waits for connections to end until ctx is done. At the
// deadline it ends every session (each tells its user why), gives them
// shutdownSeal to seal, closes every connection and returns ctx.Err() — the
// net/http.Server contract. It returns nil if everything ended in time.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, c := range s.closeListeners() {
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
	}
	for _, c := range s.liveConns() {
		c.cancel(errShutdown)
	}
	if waitOr(done, shutdownSeal) {
		return ctx.Err()
	}
	s.closeRaw()
	waitOr(done, shutdownSeal)
	return ctx.Err()
}

// Close closes all listeners and connections at once and waits for their
// goroutines, bounded by connTeardown.
func (s *Server) Close() error {
	s.closeListeners()
	for _, c := range s.liveConns() {
		c.cancel(errShutdown)
	}
	s.closeRaw()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	waitOr(done, connTeardown)
	return nil
}

func (s *Server) closeRaw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for nc := range s.raw {
		nc.Close()
	}
}

func (s *Server) closeListeners() []*clientConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && s.lockQuit != nil {
		close(s.lockQuit)
	}
	if !s.closed {
		close(s.grantQuit)
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
	for _, c := range s.liveConns() {
		c.mu.Lock()
		var found *session
		for ss := range c.sessions {
			if ss.id == sessionID {
				found = ss
			}
		}
		c.mu.Unlock()
		if found != nil {
			found.cancel(revoked(reason))
			return true
		}
	}
	return false
}

// SetTargets replaces the configured targets (a configuration reload): new
// connections resolve against them; live sessions keep their target. A
// target that cannot be used (no address, no host key or CA) is refused
// with a one-line error naming it, and nothing changes.
func (s *Server) SetTargets(targets []Target) error {
	return s.targets.set(targets)
}

// target returns the configured target called name.
func (s *Server) target(name string) (Target, bool) { return s.targets.get(name) }

// targetList returns the configured targets in configuration order.
func (s *Server) targetList() []Target { return s.targets.all() }
