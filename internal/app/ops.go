package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/alerts"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// observedAudit is the audit log as the gateway and the web server see it:
// every durable append also updates the metrics and wakes the alerts.
type observedAudit struct{ a *App }

func (o observedAudit) Append(ctx context.Context, ev audit.Event) error {
	start := time.Now()
	err := o.a.Audit.Append(ctx, ev)
	if err != nil {
		return err
	}
	o.a.Metrics.AuditAppended(time.Since(start))
	o.a.Metrics.ObserveEvent(ev)
	if o.a.Alerts != nil {
		o.a.Alerts.Wake()
	}
	return nil
}

// auditor is the audit log every in-process writer should use.
func (a *App) auditor() observedAudit { return observedAudit{a} }

// recordingFlushHook is the recorder's flush hook, nil without metrics.
func (a *App) recordingFlushHook() func(int, time.Duration) {
	if a.Metrics == nil {
		return nil
	}
	return a.Metrics.RecordingFlushed
}

// targetDialHook is the gateway's dial hook, nil without metrics.
func (a *App) targetDialHook() func(string, time.Duration, error) {
	if a.Metrics == nil {
		return nil
	}
	return a.Metrics.TargetDialed
}

// readinessChecks are what /readyz probes: the database, the recordings
// store and the audit writer.
func (a *App) readinessChecks() []metrics.Check {
	return []metrics.Check{
		{Name: "database", Run: func(ctx context.Context) error {
			var n int
			return a.Env.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n)
		}},
		{Name: "recordings", Run: a.Recs.Check},
		{Name: "audit", Run: a.Audit.Check},
	}
}

// startOps starts the operations listener (metrics.listen) when configured.
func (a *App) startOps() error {
	if a.Config.Metrics.Listen == "" {
		return nil
	}
	a.Metrics.GaugeFunc("gatehouse_approvals_pending", "Browser approvals of plain-ssh logins waiting now.",
		func() float64 { return float64(a.Approvals.Pending()) })
	a.Metrics.GaugeFunc("gatehouse_audit_queue_depth", "Audit appends waiting for the writer.",
		func() float64 { return float64(a.Audit.QueueDepth()) })
	ln, err := net.Listen("tcp", a.Config.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("metrics.listen %s: %w", a.Config.Metrics.Listen, err)
	}
	a.opsAddr = ln.Addr().String()
	a.ops = metrics.NewServer(a.Metrics, a.readinessChecks(), a.Log)
	go func() {
		if err := a.ops.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.errc <- err
		}
	}()
	a.Log.Info("operations listener", "addr", a.opsAddr, "paths", "/metrics /healthz /readyz")
	return nil
}

// openAlerts sets up the alert dispatcher when alerts are configured; it
// starts with the listeners.
func (a *App) openAlerts() error {
	if len(a.Config.Alerts) == 0 {
		return nil
	}
	var err error
	a.Alerts, err = alerts.New(alerts.Options{Alerts: a.Config.Alerts, Targets: a.Config.Targets, DB: a.Env.DB.DB,
		Audit: a.Audit, Metrics: a.Metrics, Logger: a.Log})
	return err
}

// MetricsAddr is the address of the operations listener ("" when off).
func (a *App) MetricsAddr() string { return a.opsAddr }

// MasterKeyBesideData reports whether the master key is (or would be
// created as) a file in the data directory, next to the database it
// protects. Only then is a missing key file created on first start.
func MasterKeyBesideData(cfg *config.Config) bool {
	if os.Getenv(secrets.EnvMasterKey) != "" {
		return false
	}
	rel, err := filepath.Rel(cfg.DataDir, cfg.MasterKeyFile)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// rotationInterval is how often the gateway checks for a CA key whose
// overlap is over.
const rotationInterval = 5 * time.Second

// followRotations switches CA keys when their overlap ends, until quit.
func (a *App) followRotations(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(rotationInterval)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		switched, err := a.Authority.ApplyRotations(context.Background())
		if err != nil {
			a.Log.Error("CA rotation check failed", "err", err)
			continue
		}
		for _, ca := range switched {
			a.Log.Info("CA key switched", "ca", ca)
			a.auditor().Append(context.Background(), audit.Event{Type: audit.EventAdminChange, User: "gatehouse",
				Reason: "the " + ca + " CA now signs with its next key", Details: map[string]any{"ca": ca}})
		}
	}
}
