// Package metrics exposes Gatehouse's Prometheus metrics and its health
// endpoints (/metrics, /healthz, /readyz) on a listener of their own, never
// on the web UI's.
//
// Most figures are derived from the audit events the gateway writes
// (ObserveEvent), so instrumenting a package costs it nothing beyond the
// events it already emits. The few that are not events — audit append
// latency, recording flushes, target dial latency — are reported through the
// small methods below, which other packages reach through hooks in their own
// configuration (a nil hook means no metrics). A nil *Metrics is valid and
// records nothing.
package metrics

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// Metrics holds every Gatehouse collector in its own registry.
type Metrics struct {
	reg *prometheus.Registry

	activeSessions *prometheus.GaugeVec
	sessionStarts  *prometheus.CounterVec
	refusals       *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	certsIssued    *prometheus.CounterVec
	recordingBytes prometheus.Counter
	recordingFlush prometheus.Histogram
	auditAppend    prometheus.Histogram
	targetDial     *prometheus.HistogramVec
	alerts         *prometheus.CounterVec

	// mu protects the following.
	mu     sync.Mutex
	active map[string]activeSession // by session id
}

type activeSession struct {
	kind   string
	serial string
}

// latencyBuckets span a fast fsync to a slow remote target (seconds).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns Metrics registered in a fresh registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), active: map[string]activeSession{}}
	m.activeSessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gatehouse_sessions_active",
		Help: "Sessions running now, by kind (shell, exec, subsystem:sftp)."}, []string{"kind"})
	m.sessionStarts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_session_starts_total",
		Help: "Sessions started, by kind."}, []string{"kind"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_session_refusals_total",
		Help: "Sessions refused, by reason class."}, []string{"reason"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_auth_failures_total",
		Help: "Failed authentications, by method (publickey, keyboard-interactive, totp)."}, []string{"method"})
	m.certsIssued = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_certificates_issued_total",
		Help: "Certificates issued, by kind (user, session)."}, []string{"kind"})
	m.recordingBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "gatehouse_recording_bytes_total",
		Help: "Encrypted recording bytes written to the recordings store."})
	m.recordingFlush = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gatehouse_recording_flush_seconds",
		Help: "Time to seal and write one recording flush.", Buckets: latencyBuckets})
	m.auditAppend = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gatehouse_audit_append_seconds",
		Help: "Time from an audit append to its durable commit.", Buckets: latencyBuckets})
	m.targetDial = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gatehouse_target_dial_seconds",
		Help: "Time to connect and authenticate to a target, by target.", Buckets: latencyBuckets}, []string{"target"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_alert_deliveries_total",
		Help: "Alert webhook delivery attempts, by alert and outcome (delivered, retry, failed)."}, []string{"alert", "outcome"})
	m.reg.MustRegister(m.activeSessions, m.sessionStarts, m.refusals, m.authFailures, m.certsIssued,
		m.recordingBytes, m.recordingFlush, m.auditAppend, m.targetDial, m.alerts,
		// go_gc_heap_live_bytes (the heap the last GC found live) next to the
		// memstats: memory per session without the GC's headroom; and
		// go_cpu_classes_gc_total_cpu_seconds_total, the CPU the collector
		// took — what a lower GOGC costs.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^(/gc/heap/live:bytes|/cpu/classes/gc/total:cpu-seconds)$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the collectors live (tests, extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// GaugeFunc registers a gauge whose value fn reports at scrape time (pending
// approvals, audit queue depth). fn must be safe for concurrent use.
func (m *Metrics) GaugeFunc(name, help string, fn func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// AuditAppended records one audit append that took d.
func (m *Metrics) AuditAppended(d time.Duration) {
	if m != nil {
		m.auditAppend.Observe(d.Seconds())
	}
}

// RecordingFlushed records one recording flush of n bytes that took d.
func (m *Metrics) RecordingFlushed(n int, d time.Duration) {
	if m != nil {
		m.recordingBytes.Add(float64(n))
		m.recordingFlush.Observe(d.Seconds())
	}
}

// TargetDialed records a successful connection to target that took d.
// Failed dials are counted as refusals through their audit event.
func (m *Metrics) TargetDialed(target string, d time.Duration, err error) {
	if m != nil && err == nil {
		m.targetDial.WithLabelValues(target).Observe(d.Seconds())
	}
}

// AlertDelivery counts one delivery attempt of alert with its outcome.
func (m *Metrics) AlertDelivery(alert, outcome string) {
	if m != nil {
		m.alerts.WithLabelValues(alert, outcome).Inc()
	}
}

// ObserveEvent updates the counters an audit event stands for. Call it once
// per event, after the event was durably appended.
func (m *Metrics) ObserveEvent(ev audit.Event) {
	if m == nil {
		return
	}
	switch ev.Type {
	case audit.EventSessionStart:
		m.sessionStarted(ev)
	case audit.EventSessionEnd:
		m.sessionEnded(ev)
	case audit.EventSessionDenied:
		m.refusals.WithLabelValues(RefusalClass(ev.Reason)).Inc()
	case audit.EventAuthFailure:
		method, _ := ev.Details["method"].(string)
		n := 1
		if s, ok := ev.Details["suppressed"].(int); ok && s > 0 { // the gateway's summary of rate-limited events
			n = s
		}
		m.authFailures.WithLabelValues(boundedMethod(method)).Add(float64(n))
	case audit.EventMFAFailure:
		m.authFailures.WithLabelValues("totp").Inc()
	case audit.EventCertIssued:
		m.certsIssued.WithLabelValues("user").Inc()
	}
}

func (m *Metrics) sessionStarted(ev audit.Event) {
	kind := detail(ev, "kind")
	serial := detail(ev, "session_cert_serial")
	m.mu.Lock()
	defer m.mu.Unlock()
	if serial != "" && serial != "0" && !m.serialActive(serial) {
		// One per-session certificate per target connection; sessions
		// multiplexed on it share it.
		m.certsIssued.WithLabelValues("session").Inc()
	}
	m.active[ev.SessionID] = activeSession{kind: kind, serial: serial}
	m.sessionStarts.WithLabelValues(kind).Inc()
	m.activeSessions.WithLabelValues(kind).Inc()
}

// serialActive reports whether a live session already uses serial. Caller
// holds mu.
func (m *Metrics) serialActive(serial string) bool {
	for _, s := range m.active {
		if s.serial == serial {
			return true
		}
	}
	return false
}

func (m *Metrics) sessionEnded(ev audit.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.active[ev.SessionID]
	if !ok {
		return // started before this process (crash recovery) or never started
	}
	delete(m.active, ev.SessionID)
	m.activeSessions.WithLabelValues(s.kind).Dec()
}

func detail(ev audit.Event, key string) string {
	switch v := ev.Details[key].(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	}
	return ""
}

// boundedMethod keeps the method label to the SSH method names.
func boundedMethod(m string) string {
	switch m {
	case "publickey", "keyboard-interactive", "password", "none":
		return m
	}
	return "other"
}

// RefusalClass maps a refusal reason (free text) to a small fixed set of
// label values, so a metric never grows one series per message.
func RefusalClass(reason string) string {
	r := strings.ToLower(reason)
	switch {
	case strings.Contains(r, "recording"):
		return "recording_failed"
	case strings.Contains(r, "locked"):
		return "locked"
	case strings.Contains(r, "host key"):
		return "target_host_key"
	case strings.Contains(r, "refused the login"):
		return "target_auth"
	case strings.Contains(r, "cannot reach"), strings.Contains(r, "unreachable"), strings.Contains(r, "not reachable"):
		return "target_unreachable"
	case strings.Contains(r, "command"):
		return "command_denied"
	case strings.Contains(r, "unknown target"), strings.Contains(r, "no such target"), strings.Contains(r, "not found"):
		return "unknown_target"
	case strings.Contains(r, "audit"):
		return "audit_unavailable"
	}
	return "policy"
}
