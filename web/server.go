package web

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/usererr"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Auditor is the part of the audit log the web server uses.
type Auditor interface {
	Append(ctx context.Context, ev audit.Event) error
}

// Options configures the server. Config, DB, Authority, Policy, Audit and
// TOTP are required; OIDC nil disables login (certificates only).
type Options struct {
	Config    *config.Config
	DB        *store.DB
	Authority *auth.Authority
	Policy    *policy.Engine
	Audit     Auditor
	OIDC      *auth.OIDC
	TOTP      *auth.TOTP
	Approvals *auth.Approvals
	// For the session, replay, live and audit pages (nil hides them).
	Sessions   *recorder.SessionStore
	Recordings *recorder.Recordings
	AuditLog   *audit.Log
	Terminator Terminator
	Locks      *policy.Locks
	// Requests holds just-in-time access requests; nil hides their pages.
	Requests *policy.Requests
	// SSHAddr is the gateway's SSH address, shown in instructions.
	SSHAddr string
	Logger  *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Server is the web front door.
type Server struct {
	opts  Options
	log   *slog.Logger
	tmpl  *template.Template
	mux   *http.ServeMux
	http  *http.Server
	https bool

	// conf is the configuration the pages read: the startup one, with the
	// roles, bindings and targets of the last applied reload (ApplyPolicy).
	conf atomic.Pointer[config.Config]

	// mu protects logins (OIDC logins in flight, by state).
	mu     sync.Mutex
	logins map[string]pendingLogin
}

type pendingLogin struct {
	req  auth.LoginRequest
	next string
}

// NewServer builds the server and its routes.
func NewServer(opts Options) (*Server, error) {
	if opts.Config == nil || opts.DB == nil || opts.Authority == nil || opts.Policy == nil || opts.Audit == nil || opts.TOTP == nil {
		return nil, errors.New("web: Config, DB, Authority, Policy, Audit and TOTP are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tmpl, err := template.New("").Funcs(template.FuncMap{"duration": durationOf,
		"since":  func(t time.Time) string { return t.Format("2006-01-02 15:04:05") },
		"offset": func(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) },
		"deref":  func(p *int) int { return *p }, "kind": kindLabel, "fields": fields}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, tmpl: tmpl, mux: http.NewServeMux(), logins: map[string]pendingLogin{},
		https: !opts.Config.Web.InsecureHTTP}
	s.conf.Store(opts.Config)
	s.routes()
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	return s, nil
}

// config is the configuration in force for the pages (see ApplyPolicy).
func (s *Server) config() *config.Config {
	if c := s.conf.Load(); c != nil {
		return c
	}
	return s.opts.Config
}

// ApplyPolicy makes a reloaded file's roles, bindings and targets those the
// pages show (targets, access matrix, approval page); every other setting
// stays as it was at start, as on the gateway.
func (s *Server) ApplyPolicy(reloaded *config.Config) {
	next := *s.config()
	next.Roles, next.Bindings, next.Targets = reloaded.Roles, reloaded.Bindings, reloaded.Targets
	s.conf.Store(&next)
}

func (s *Server) routes() {
	static, _ := fs.Sub(staticFS, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /{$}", s.home)
	s.mux.HandleFunc("GET /login", s.login)
	s.mux.HandleFunc("GET /oidc/callback", s.callback)
	s.mux.HandleFunc("GET /mfa", s.mfaPage)
	s.mux.HandleFunc("POST /mfa", s.mfaSubmit)
	s.mux.HandleFunc("POST /logout", s.logout)
	s.mux.Handle("GET /approve/{code}", s.requireViewer(s.approvePage))
	s.mux.HandleFunc("POST /approve/{code}", s.approveSubmit)
	s.mux.HandleFunc("GET /cli/login", s.cliLogin)
	s.mux.HandleFunc("POST /api/v1/cert", s.cliCert)
	if s.opts.Sessions != nil && s.opts.Recordings != nil && s.opts.AuditLog != nil {
		s.uiRoutes()
	}
	if s.opts.Requests != nil {
		s.requestRoutes()
	}
}

// Handler is the server's HTTP handler with security headers.
func (s *Server) Handler() http.Handler { return s.secure(s.mux) }

// secure adds the headers every response carries.
func (s *Server) secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		// 'wasm-unsafe-eval' lets the replay player compile its terminal
		// emulator (WebAssembly); it does not allow JavaScript eval.
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "+
			"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self' http://127.0.0.1:* http://localhost:*; frame-ancestors 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		if s.https {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		h.ServeHTTP(w, r)
	})
}

// Serve serves on ln (HTTPS unless web.insecure_http) until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if !s.https {
		return s.http.Serve(ln)
	}
	cert, err := loadOrCreateTLS(s.config(), s.log)
	if err != nil {
		return err
	}
	return s.http.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
}

// Shutdown stops the server gracefully.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.Shutdown(ctx)
}

func (s *Server) render(w http.ResponseWriter, name string, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.tmpl.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error("render", "template", name, "err", err)
	}
}

// fail shows a one-line error page and logs the detail.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, userMsg string, detail error) {
	s.log.Warn("web request failed", "path", r.URL.Path, "remote", r.RemoteAddr, "status", status, "err", detail)
	s.errorPage(w, r, status, userMsg)
}

// failErr shows err's user-visible line (usererr.Message) on the error
// page: its own message, or the generic line whose reference is logged here
// with the detail.
func (s *Server) failErr(w http.ResponseWriter, r *http.Request, status int, err error) {
	msg, ref := usererr.Message(err)
	s.log.Warn("web request failed", "path", r.URL.Path, "remote", r.RemoteAddr, "status", status, "ref", ref, "err", err)
	s.errorPage(w, r, status, msg)
}

// visible is err's user-visible line for a form's error slot; a generic
// line's reference is logged here with the detail.
func (s *Server) visible(r *http.Request, err error) string {
	msg, ref := usererr.Message(err)
	if ref != "" {
		s.log.Warn("web request failed", "path", r.URL.Path, "remote", r.RemoteAddr, "ref", ref, "err", err)
	}
	return msg
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, userMsg string) {
	w.WriteHeader(status)
	d := s.base(s.session(r), "Error")
	d["Error"] = userMsg
	s.render(w, "error.html", d)
}

// localPath accepts only same-site paths as login destinations (no
// scheme, no host, no "//" or backslash tricks): open redirects are a known
// bastion bug.
func localPath(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

func (s *Server) publicURL() string { return strings.TrimRight(s.config().Web.PublicURL, "/") }

// The browser chooses its user agent and, before login, much of what a
// refusal reason quotes: what is written about it is capped.
const (
	maxAuditUserAgent = 256
	maxAuditReason    = 512
	maxAuditDetail    = 512
)

func (s *Server) audit(r *http.Request, ev audit.Event) {
	ev.ClientAddr, ev.ClientVersion = r.RemoteAddr, clip(r.UserAgent(), maxAuditUserAgent)
	ev.Reason = clip(ev.Reason, maxAuditReason)
	for k, v := range ev.Details {
		if str, ok := v.(string); ok {
			ev.Details[k] = clip(str, maxAuditDetail)
		}
	}
	if err := s.opts.Audit.Append(context.WithoutCancel(r.Context()), ev); err != nil {
		s.log.Error("audit append failed", "type", ev.Type, "err", err)
	}
}

// clip shortens s to at most n bytes (on a UTF-8 boundary), saying how much
// was cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("...[%d bytes cut]", len(s)-cut)
}
