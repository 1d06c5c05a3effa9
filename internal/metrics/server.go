package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness probe: Name says what is checked ("database"), Run
// returns why it is not usable.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Server serves /metrics, /healthz and /readyz.
//
// Lifecycle: NewServer, Serve, Shutdown.
type Server struct {
	srv    *http.Server
	checks []Check
	log    *slog.Logger
}

// checkTimeout bounds one readiness probe.
const checkTimeout = 5 * time.Second

// NewServer returns a server for m (nil serves health only) running checks
// on /readyz. log nil means slog.Default().
func NewServer(m *Metrics, checks []Check, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{checks: checks, log: log}
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slogAdapter{log}}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	return s
}

// readyz answers 200 "ok" when every check passes, else 503 with one line
// per failing check.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	var failed []string
	for _, c := range s.checks {
		if err := c.Run(ctx); err != nil {
			failed = append(failed, c.Name+": "+err.Error())
			s.log.Warn("readiness check failed", "check", c.Name, "err", err)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready")
		fmt.Fprintln(w, strings.Join(failed, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

// Serve serves on ln until Shutdown; it returns http.ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops the server within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.srv.Close()
	}
	return err
}

// slogAdapter gives promhttp a Println logger.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Println(v ...any) { a.log.Error("metrics: " + fmt.Sprint(v...)) }
