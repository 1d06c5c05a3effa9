package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// Unauthenticated clients choose the user name, client version and (through
// them) the error text of a refused login. What is written about them is
// capped, and auth.failure events are rate-limited per source: anything
// more becomes one summary event per source and window.
const (
	maxLoggedUser    = 256
	maxLoggedVersion = 256
	maxLoggedReason  = 512

	// failureWindow and failuresPerSource: at most this many auth.failure
	// events per source (IPv4 address or IPv6 /64) per window, and
	// failuresTotal across all sources; the rest are counted and summed up
	// in one event per source when the window closes.
	failureWindow     = 10 * time.Second
	failuresPerSource = 10
	failuresTotal     = 200
	// maxFailureSources bounds the sources tracked in one window; beyond
	// it, sources are counted together as "other".
	maxFailureSources = 10000
)

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

// failureLimiter counts auth.failure events per source in fixed windows.
type failureLimiter struct {
	// mu protects the following.
	mu      sync.Mutex
	start   time.Time      // start of the current window
	written map[string]int // events written this window, per source
	total   int            // events written this window
	dropped map[string]int // events dropped this window, per source
	flusher bool           // the flush goroutine runs
}

// allow reports whether an event from src may be written at now. When a
// window has ended, it returns the previous window's dropped counts.
func (l *failureLimiter) allow(src string, now time.Time) (ok bool, dropped map[string]int, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dropped, start = l.rotate(now)
	if l.written[src] >= failuresPerSource || l.total >= failuresTotal {
		if _, seen := l.dropped[src]; !seen && len(l.dropped) >= maxFailureSources {
			src = "other"
		}
		l.dropped[src]++
		return false, dropped, start
	}
	if _, seen := l.written[src]; !seen && len(l.written) >= maxFailureSources {
		src = "other"
	}
	l.written[src]++
	l.total++
	return true, dropped, start
}

// rotate starts a new window when the current one is over and returns what
// the old one dropped. l.mu must be held.
func (l *failureLimiter) rotate(now time.Time) (map[string]int, time.Time) {
	if l.written != nil && now.Sub(l.start) < failureWindow {
		return nil, time.Time{}
	}
	dropped, start := l.dropped, l.start
	l.start, l.written, l.dropped, l.total = now, map[string]int{}, map[string]int{}, 0
	return dropped, start
}

// authLog writes an auth.failure event for a refused login (rate-limited,
// with the client's strings capped) and logs it for the operator.
func (s *Server) authLog(meta ssh.ConnMetadata, method string, err error) {
	if err == nil || method == "none" {
		return
	}
	var pse *ssh.PartialSuccessError
	if errors.As(err, &pse) || errors.Is(err, ssh.ErrNoAuth) || errors.Is(err, auth.ErrNotCertificate) {
		// Plain keys offered before a certificate are routine, not events.
		return
	}
	remote := meta.RemoteAddr().String()
	user, version := clip(meta.User(), maxLoggedUser), clip(string(meta.ClientVersion()), maxLoggedVersion)
	reason := clip(err.Error(), maxLoggedReason)
	s.log.Info("ssh auth refused", "remote", remote, "user", user, "client", version, "method", method, "err", reason)
	host, _, _ := net.SplitHostPort(remote)
	s.startFailureFlusher()
	ok, dropped, start := s.failures.allow(auth.Source(host), s.now())
	s.writeDropped(dropped, start)
	if !ok {
		return
	}
	ev := audit.Event{Type: audit.EventAuthFailure, ClientAddr: remote, ClientVersion: version, Reason: reason,
		Details: map[string]any{"ssh_user": user, "method": method}}
	if aerr := s.cfg.Audit.Append(context.Background(), ev); aerr != nil {
		s.log.Error("audit append failed", "err", aerr)
	}
}

// writeDropped writes one summary event per source that had events dropped.
func (s *Server) writeDropped(dropped map[string]int, start time.Time) {
	srcs := make([]string, 0, len(dropped))
	for src := range dropped {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	for _, src := range srcs {
		n := dropped[src]
		ev := audit.Event{Type: audit.EventAuthFailure, ClientAddr: src,
			Reason: fmt.Sprintf("%d more refused logins from %s not logged one by one (rate limit)", n, src),
			Details: map[string]any{"suppressed": n, "source": src, "window_start": start.UTC().Format(time.RFC3339),
				"window_seconds": int64(failureWindow / time.Second)}}
		if err := s.cfg.Audit.Append(context.Background(), ev); err != nil {
			s.log.Error("audit append failed", "err", err)
		}
		s.log.Warn("ssh auth failures rate-limited", "source", src, "suppressed", n)
	}
}

// startFailureFlusher starts, once, the goroutine that writes the summary
// of a window when it closes even if no further failure arrives. It stops
// when the server shuts down, writing what is pending before Shutdown
// returns.
func (s *Server) startFailureFlusher() {
	s.failures.mu.Lock()
	defer s.failures.mu.Unlock()
	if s.failures.flusher {
		return
	}
	s.failures.flusher = true
	// Counted in s.wg (the caller's connection is, so the count is above
	// zero): Shutdown returns only after the last summary is written.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(failureWindow)
		defer t.Stop()
		for {
			select {
			case <-s.authCtx.Done():
				s.flushFailures(s.now().Add(failureWindow))
				return
			case <-t.C:
				s.flushFailures(s.now())
			}
		}
	}()
}

func (s *Server) flushFailures(now time.Time) {
	s.failures.mu.Lock()
	dropped, start := s.failures.rotate(now)
	s.failures.mu.Unlock()
	s.writeDropped(dropped, start)
}
