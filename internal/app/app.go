// Package app assembles a running Gatehouse from its configuration: storage,
// the CAs, the audit log, the recorder, the SSH gateway and the web server.
// `gatehouse serve`, `gatehouse demo` and the end-to-end tests all start
// Gatehouse through Start, so they run the same code.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/web"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/gateway"
	"github.com/gatehouse/gatehouse/internal/alerts"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/instance"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// Env is storage every subcommand needs: configuration, database and the
// sealed-secret store. The data directory is created on first use.
type Env struct {
	Config  *config.Config
	DB      *store.DB
	Secrets *secrets.Store
}

// OpenEnv opens the data directory, database and master key of cfg.
func OpenEnv(cfg *config.Config) (*Env, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	kr, err := LoadMasterKey(cfg, MasterKeyBesideData(cfg))
	if err != nil {
		return nil, err
	}
	db, err := store.OpenURL(context.Background(), DatabaseURL(cfg), cfg.DataDir, slog.Default())
	if err != nil {
		return nil, err
	}
	return &Env{Config: cfg, DB: db, Secrets: secrets.NewStore(db.DB, kr)}, nil
}

// DatabaseURL is database.url, or GATEHOUSE_DATABASE_URL when set.
func DatabaseURL(cfg *config.Config) string {
	if u := os.Getenv("GATEHOUSE_DATABASE_URL"); u != "" {
		return u
	}
	return cfg.Database.URL
}

// Close closes the database.
func (e *Env) Close() error { return e.DB.Close() }

// App is a running gateway.
type App struct {
	Config    *config.Config
	Env       *Env
	Log       *slog.Logger
	Authority *auth.Authority
	Audit     *audit.Log
	Recs      *recorder.Recordings
	Sessions  *recorder.SessionStore
	Gateway   *gateway.Server
	TOTP      *auth.TOTP
	Approvals *auth.Approvals
	OIDC      *auth.OIDC // nil when no identity provider is configured
	Web       *web.Server
	Locks     *policy.Locks
	Requests  *policy.Requests   // just-in-time access requests and grants
	Policy    *policy.Engine     // the configuration's policy with grants
	Metrics   *metrics.Metrics   // nil when metrics.listen is empty
	Alerts    *alerts.Dispatcher // nil when no alerts are configured
	Instance  *instance.Instance // this process in the instances table (its lease)

	sshAddr, webAddr, opsAddr string
	ops                       *metrics.Server
	closeCA                   func()        // releases the CA keys' token (ca.pkcs11)
	rotQuit, rotDone          chan struct{} // stop and wait for followRotations
	reqQuit, reqDone          chan struct{} // stop and wait for expireRequests
	termQuit, termDone        chan struct{} // stop and wait for watchTerminations
	beatQuit, beatDone        chan struct{} // stop and wait for heartbeat
	released                  bool          // the instance lease was released (Close)
	// unfinished are sessions this instance claimed from a dead one whose
	// recovery failed midway (retried by the next pass). Only the start
	// pass and then the heartbeat goroutine use it, one after the other.
	unfinished           map[string]recorder.OpenSession
	lastPrune            time.Time      // the last pruneInstances (heartbeat goroutine after the start pass)
	watchQuit, watchDone chan struct{}  // stop and wait for watchConfig (nil: not watching)
	reloadMu             sync.Mutex     // one Reload at a time
	active               *config.Config // roles, bindings and targets in force (Reload)
	errc                 chan error
	stopRetention        context.CancelFunc // nil when no retention is configured
}

// Start opens storage, seals what a previous crash left open, and starts the
// SSH listener.
func Start(cfg *config.Config, log *slog.Logger) (*App, error) {
	rules, targets, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	env, err := OpenEnv(cfg)
	if err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Env: env, Log: log, errc: make(chan error, 3), active: cfg}
	if cfg.Metrics.Listen != "" {
		a.Metrics = metrics.New()
	}
	if err := a.open(rules, targets); err != nil {
		a.Close(context.Background())
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.SSH.Listen)
	if err != nil {
		a.Close(context.Background())
		return nil, fmt.Errorf("ssh.listen %s: %w", cfg.SSH.Listen, err)
	}
	a.sshAddr = ln.Addr().String()
	go func() {
		if err := a.Gateway.Serve(ln); err != nil && !errors.Is(err, gateway.ErrServerClosed) {
			a.errc <- err
		}
	}()
	if err := a.startWeb(); err != nil {
		a.Close(context.Background())
		return nil, err
	}
	if err := a.startOps(); err != nil {
		a.Close(context.Background())
		return nil, err
	}
	if a.Alerts != nil {
		a.Alerts.Start()
	}
	a.rotQuit, a.rotDone = make(chan struct{}), make(chan struct{})
	go a.followRotations(a.rotQuit, a.rotDone)
	a.reqQuit, a.reqDone = make(chan struct{}), make(chan struct{})
	go a.expireRequests(a.reqQuit, a.reqDone)
	a.termQuit, a.termDone = make(chan struct{}), make(chan struct{})
	go a.watchTerminations(a.termQuit, a.termDone)
	a.beatQuit, a.beatDone = make(chan struct{}), make(chan struct{})
	go a.heartbeat(a.beatQuit, a.beatDone)
	if cfg.WatchConfig > 0 && cfg.Path() != "" {
		a.watchQuit, a.watchDone = make(chan struct{}), make(chan struct{})
		go a.watchConfig(cfg.WatchConfig, a.watchQuit, a.watchDone)
	}
	if ret := RetentionOf(cfg); ret.Audit > 0 || ret.Recordings > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		a.stopRetention = cancel
		go recorder.RetentionRun{Retention: ret, Audit: a.Audit, Recordings: a.Recs, Logger: a.Log}.Loop(ctx)
	}
	return a, nil
}

// startWeb starts the HTTPS front door (login, TOTP, approvals, CLI login).
func (a *App) startWeb() error {
	ln, err := net.Listen("tcp", a.Config.Web.Listen)
	if err != nil {
		return fmt.Errorf("web.listen %s: %w", a.Config.Web.Listen, err)
	}
	a.webAddr = ln.Addr().String()
	a.Web, err = web.NewServer(web.Options{Config: a.Config, DB: a.Env.DB, Authority: a.Authority,
		Policy: a.Policy, Requests: a.Requests, Audit: a.auditor(), OIDC: a.OIDC, TOTP: a.TOTP, Approvals: a.Approvals,
		Sessions: a.Sessions, Recordings: a.Recs, AuditLog: a.Audit, Terminator: a.Gateway, Locks: a.Locks,
		SSHAddr: a.sshAddr, Logger: a.Log})
	if err != nil {
		ln.Close()
		return err
	}
	go func() {
		if err := a.Web.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.errc <- err
		}
	}()
	return nil
}

// WebAddr is the address the web listener is bound to.
func (a *App) WebAddr() string { return a.webAddr }

// SSHAddr is the address the SSH listener is bound to.
func (a *App) SSHAddr() string { return a.sshAddr }

// Err delivers a fatal server error.
func (a *App) Err() <-chan error { return a.errc }

// open starts the domain packages with cfg's resolved rules and targets.
func (a *App) open(rules policy.Policy, targets []gateway.Target) error {
	ctx := context.Background()
	cfg := a.Config
	var err error
	if a.Authority, a.closeCA, err = LoadAuthority(ctx, a.Env); err != nil {
		return err
	}
	a.Authority.MaxUserCertTTL = cfg.Certs.MaxUserTTL
	if a.Authority.SessionCAMigrated() {
		a.Log.Warn(auth.SessionCAMigrationNotice)
	}
	a.warnUnusedSealedCAKeys(ctx)
	if a.Audit, err = OpenAudit(a.Env, a.Log); err != nil {
		return err
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	if a.Recs, err = recorder.OpenRecordings(cfg.Recording.Dir, a.Env.DB, a.Env.Secrets.Keyring(), recorder.RecordingOptions{
		MaxBytes: cfg.Recording.MaxSessionBytes, StreamFullBytes: cfg.Recording.StreamFullBytes, Logger: a.Log, OnFlush: a.recordingFlushHook(),
		S3: RecordingS3(cfg.Recording.S3), Instance: a.Instance.ID(),
	}); err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	a.Sessions = recorder.NewSessionStore(a.Env.DB.DB)
	a.Sessions.SetInstance(a.Instance.ID())
	if err := a.recoverAtStart(ctx); err != nil {
		return err
	}
	if err := a.openIdentity(); err != nil {
		return err
	}
	a.Locks = policy.NewLocks(a.Env.DB.DB)
	a.Requests = policy.NewRequests(a.Env.DB.DB)
	if err := a.Requests.Refresh(ctx); err != nil {
		return err
	}
	a.Policy = policy.New(rules).WithGrants(a.Requests)
	if err := a.openAlerts(); err != nil {
		return err
	}
	var approver gateway.Approver
	if a.OIDC != nil {
		approver = approverAdapter{a.Approvals, a.TOTP}
	}
	a.Gateway, err = gateway.NewServer(gateway.Config{
		Authority: a.Authority, Policy: a.Policy, Targets: targets, Audit: a.auditor(),
		Sessions: a.Sessions, Recorder: recordingsAdapter{a.Recs}, RecordingFailOpen: cfg.Recording.FailOpen,
		NewFileTap: newFileTap, Docker: newDockerDialer(a.Log), Approver: approver, Locks: a.Locks, Logger: a.Log,
		HandshakeTimeout: cfg.SSH.HandshakeTimeout, MaxUnauthPerIP: cfg.SSH.MaxUnauthenticatedPerIP,
		MaxUnauth:         cfg.SSH.MaxUnauthenticated,
		TargetDialTimeout: cfg.SSH.TargetDialTimeout, SessionCertTTL: cfg.Certs.SessionTTL,
		Ciphers: cfg.SSH.Ciphers, KeyExchanges: cfg.SSH.KeyExchanges, MACs: cfg.SSH.MACs,
		HostKeyAlgorithms: cfg.SSH.HostKeyTypes, LoginPattern: cfg.SSH.LoginRE(), HostNames: hostNames(cfg),
		OnTargetDial: a.targetDialHook(), SessionsElsewhere: a.sessionsElsewhere(),
	})
	return err
}

// openIdentity sets up TOTP, browser approvals and (when an issuer is
// configured) the OIDC relying party.
func (a *App) openIdentity() error {
	cfg := a.Config
	a.TOTP = auth.NewTOTP(a.Env.DB.DB, a.Env.Secrets.Keyring(), auth.TOTPConfig{Issuer: cfg.TOTP.Issuer,
		MaxAttempts: cfg.TOTP.MaxAttempts, Lockout: cfg.TOTP.Lockout,
		OnEvent: func(user, what string) {
			a.auditor().Append(context.Background(), audit.Event{Type: audit.EventMFALockout, User: user,
				Reason: "too many wrong TOTP codes"})
		}})
	a.Approvals = &auth.Approvals{DB: a.Env.DB.DB, CodeKey: a.Env.Secrets.Keyring().Derive("ssh approval codes"), Instance: a.Instance.ID(),
		Log: a.Log, BaseURL: cfg.Web.PublicURL, Window: cfg.Certs.ApprovalWindow,
		MaxPerSource: cfg.Certs.MaxPendingApprovalsPerIP, MaxPending: cfg.Certs.MaxPendingApprovals}
	if cfg.OIDC.Issuer == "" {
		return nil
	}
	var secret string
	if f := cfg.OIDC.ClientSecretFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("oidc.client_secret_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	a.OIDC = auth.NewOIDC(auth.OIDCConfig{Issuer: cfg.OIDC.Issuer, ClientID: cfg.OIDC.ClientID, ClientSecret: secret,
		RedirectURL: strings.TrimRight(cfg.Web.PublicURL, "/") + "/oidc/callback", Scopes: cfg.OIDC.Scopes,
		GroupsClaim: cfg.OIDC.GroupsClaim, UsernameClaim: cfg.OIDC.UsernameClaim, MaxClockSkew: cfg.OIDC.MaxClockSkew})
	return nil
}

// OpenAudit opens the audit log with the configured checkpoint and stream
// settings.
func OpenAudit(env *Env, log *slog.Logger) (*audit.Log, error) {
	c := env.Config.Audit
	return audit.Open(env.DB, env.Secrets, audit.Options{
		CheckpointInterval: c.CheckpointInterval, CheckpointFile: c.CheckpointFile,
		CheckpointURL: c.CheckpointURL, Stream: c.Stream, Logger: log,
	})
}

func hostNames(cfg *config.Config) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if u, err := url.Parse(cfg.Web.PublicURL); err == nil && u.Hostname() != "" {
		names = append(names, u.Hostname())
	}
	if h, _, err := net.SplitHostPort(cfg.SSH.Listen); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
		names = append(names, h)
	}
	return names
}

// Close shuts the gateway down gracefully within ctx, then closes storage.
func (a *App) Close(ctx context.Context) error {
	var errs []error
	if a.stopRetention != nil {
		a.stopRetention()
	}
	if a.rotQuit != nil {
		close(a.rotQuit)
		<-a.rotDone
		a.rotQuit = nil
	}
	if a.watchQuit != nil {
		close(a.watchQuit)
		<-a.watchDone
		a.watchQuit = nil
	}
	if a.reqQuit != nil {
		close(a.reqQuit)
		<-a.reqDone
		a.reqQuit = nil
	}
	if a.termQuit != nil {
		close(a.termQuit)
		<-a.termDone
		a.termQuit = nil
	}
	if a.ops != nil {
		a.ops.Shutdown(ctx)
	}
	if a.Web != nil {
		a.Web.Shutdown(ctx)
	}
	if a.Gateway != nil {
		if err := a.Gateway.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, err)
		}
	}
	if a.beatQuit != nil {
		close(a.beatQuit)
		<-a.beatDone
		a.beatQuit = nil
	}
	if a.Recs != nil {
		// After the gateway: its sessions seal their recordings first; this
		// stops the flusher goroutine.
		a.Recs.Close()
	}
	if a.Instance != nil && !a.released {
		a.released = true
		// After the gateway: a clean stop hands anything still open to the
		// next live instance at once instead of after the lease.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := a.Instance.Release(rctx)
		cancel()
		if err != nil {
			a.Log.Warn("instance lease not released; other instances will wait for it to run out", "err", err)
		}
	}
	if a.Alerts != nil {
		a.Alerts.Close()
	}
	if a.Audit != nil {
		errs = append(errs, a.Audit.Close())
	}
	if a.closeCA != nil {
		a.closeCA()
	}
	errs = append(errs, a.Env.Close())
	return errors.Join(errs...)
}

// RetentionOf returns the configured retention ages.
func RetentionOf(cfg *config.Config) recorder.Retention {
	return recorder.Retention{Audit: cfg.Retention.Audit.Duration(), Recordings: cfg.Retention.Recordings.Duration()}
}

// RecordingS3 is the recorder's object store options for recording.s3; nil
// (the local directory) when no bucket is set.
func RecordingS3(c config.RecordingS3) *recorder.S3Options {
	if !c.Enabled() {
		return nil
	}
	return &recorder.S3Options{Endpoint: c.Endpoint, Bucket: c.Bucket, Prefix: c.Prefix, Region: c.Region, ObjectLockDays: c.ObjectLockDays}
}
