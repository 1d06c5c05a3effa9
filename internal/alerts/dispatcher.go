package alerts

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// Auditor is the part of the audit log the dispatcher writes outcomes to.
type Auditor interface {
	Append(ctx context.Context, ev audit.Event) error
}

// Observer counts delivery attempts (metrics); nil counts nothing.
type Observer interface {
	AlertDelivery(alert, outcome string)
}

// Options configures a Dispatcher. DB, Audit and Alerts are required.
type Options struct {
	Alerts  []config.Alert
	Targets []config.Target // for where.target_labels
	DB      *sql.DB
	Audit   Auditor
	Metrics Observer
	// Client sends the webhooks; nil means a client with a 10s timeout that
	// does not follow redirects.
	Client *http.Client
	// PollInterval is how often the audit log is checked without a Wake.
	// Zero means 1s.
	PollInterval time.Duration
	Now          func() time.Time // nil means time.Now
	Logger       *slog.Logger     // nil means slog.Default()
}

// Dispatcher follows the audit log and delivers alerts.
type Dispatcher struct {
	opts   Options
	log    *slog.Logger
	rules  map[string]*rule
	order  []*rule
	labels map[string]map[string]string // target name -> labels

	wake      chan struct{}
	quit      chan struct{}
	done      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	started   atomic.Bool
}

// Defaults of config.Alert.
const (
	defaultBackoff     = 5 * time.Second
	maxBackoff         = 10 * time.Minute
	defaultMaxAttempts = 20
	scanBatch          = 500
	deliverBatch       = 20
)

// New reads the alerts' secrets and sets the starting point in the audit log
// (on first use: its current end, so history does not fire alerts).
func New(opts Options) (*Dispatcher, error) {
	if opts.DB == nil || opts.Audit == nil {
		return nil, errors.New("alerts: DB and Audit are required")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	d := &Dispatcher{opts: opts, log: opts.Logger, rules: map[string]*rule{}, labels: map[string]map[string]string{},
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	for _, t := range opts.Targets {
		d.labels[t.Name] = t.Labels
	}
	for _, a := range opts.Alerts {
		r, err := newRule(a)
		if err != nil {
			return nil, err
		}
		d.rules[a.Name], d.order = r, append(d.order, r)
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if err := d.initCursor(d.ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func newRule(a config.Alert) (*rule, error) {
	b, err := os.ReadFile(a.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("alerts: %s: secret_file: %w", a.Name, err)
	}
	secret := bytes.TrimSpace(b)
	if len(secret) < 16 {
		return nil, fmt.Errorf("alerts: %s: secret_file %s holds %d bytes; use at least 16 random bytes (e.g. openssl rand -hex 32)", a.Name, a.SecretFile, len(secret))
	}
	if a.Backoff <= 0 {
		a.Backoff = defaultBackoff
	}
	if a.MaxAttempts <= 0 {
		a.MaxAttempts = defaultMaxAttempts
	}
	if a.Format == "" {
		a.Format = "json"
	}
	return &rule{cfg: a, secret: secret}, nil
}

// initCursor starts following the log at its current end, once.
func (d *Dispatcher) initCursor(ctx context.Context) error {
	last, err := audit.LastEventID(ctx, d.opts.DB)
	if err != nil {
		return err
	}
	if _, err := d.opts.DB.ExecContext(ctx, `INSERT INTO alert_cursor(id, last_event_id) VALUES (1, ?) ON CONFLICT(id) DO NOTHING`, last); err != nil {
		return fmt.Errorf("alerts: cursor: %w", err)
	}
	return nil
}

// Start runs the dispatcher until Close.
func (d *Dispatcher) Start() {
	d.started.Store(true)
	go d.run()
}

// Wake makes the dispatcher look at the audit log now (call after appends).
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Close stops the dispatcher; an attempt in flight is abandoned and stays
// queued (it is retried after the next start).
func (d *Dispatcher) Close() {
	d.closeOnce.Do(func() {
		close(d.quit)
		d.cancel()
		if d.started.Load() {
			<-d.done
		}
	})
}

func (d *Dispatcher) run() {
	defer close(d.done)
	t := time.NewTicker(d.opts.PollInterval)
	defer t.Stop()
	for {
		if err := d.scan(d.ctx); err != nil && d.ctx.Err() == nil {
			d.log.Error("alerts: reading the audit log failed", "err", err)
		}
		d.deliverDue(d.ctx)
		select {
		case <-d.quit:
			return
		case <-d.wake:
		case <-t.C:
		}
	}
}

// scan enqueues deliveries for the events after the cursor.
func (d *Dispatcher) scan(ctx context.Context) error {
	for {
		n, err := d.scanBatch(ctx)
		if err != nil || n < scanBatch {
			return err
		}
	}
}

func (d *Dispatcher) scanBatch(ctx context.Context) (int, error) {
	var cursor int64
	if err := d.opts.DB.QueryRowContext(ctx, `SELECT last_event_id FROM alert_cursor WHERE id = 1`).Scan(&cursor); err != nil {
		return 0, fmt.Errorf("alerts: cursor: %w", err)
	}
	var evs []audit.StoredEvent
	if err := audit.EventsAfter(ctx, d.opts.DB, cursor, scanBatch, func(ev audit.StoredEvent) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		return 0, err
	}
	if len(evs) == 0 {
		return 0, nil
	}
	return len(evs), d.enqueue(ctx, cursor, evs)
}

// enqueue stores one delivery per (alert, event) match and moves the cursor,
// in one transaction.
func (d *Dispatcher) enqueue(ctx context.Context, cursor int64, evs []audit.StoredEvent) error {
	tx, err := d.opts.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO alert_deliveries(alert, event_id, body, state, next_attempt, created)
		VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT(alert, event_id) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	defer ins.Close()
	now := d.opts.Now().UnixNano()
	for i := range evs {
		ev := &evs[i]
		for _, r := range d.order {
			if !r.matches(ev.Event, d.labels[ev.Target]) {
				continue
			}
			body, err := r.body(ev)
			if err != nil {
				return err
			}
			if _, err := ins.ExecContext(ctx, r.cfg.Name, ev.ID, body, now, now); err != nil {
				return fmt.Errorf("alerts: enqueue: %w", err)
			}
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE alert_cursor SET last_event_id = ? WHERE id = 1 AND last_event_id = ?`,
		evs[len(evs)-1].ID, cursor)
	if err != nil {
		return fmt.Errorf("alerts: cursor: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errors.New("alerts: cursor moved by another dispatcher; retrying")
	}
	return tx.Commit()
}

// body is the request body of r for ev.
func (r *rule) body(ev *audit.StoredEvent) ([]byte, error) {
	if r.cfg.Format == "slack" {
		return json.Marshal(map[string]string{"text": slackText(r.cfg.Name, ev)})
	}
	return json.Marshal(struct {
		Alert string            `json:"alert"`
		Event audit.EventRecord `json:"event"`
	}{r.cfg.Name, ev.Record()})
}

func slackText(name string, ev *audit.StoredEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Gatehouse alert *%s*: `%s`", name, ev.Type)
	for _, kv := range [][2]string{{"user", ev.User}, {"target", ev.Target}, {"login", ev.Login},
		{"session", ev.SessionID}, {"from", ev.ClientAddr}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if ev.Reason != "" {
		fmt.Fprintf(&b, " — %s", ev.Reason)
	}
	fmt.Fprintf(&b, " (event %d, %s)", ev.ID, ev.Time.UTC().Format(time.RFC3339))
	return b.String()
}

// delivery is one queued row.
type delivery struct {
	id, eventID int64
	alert       string
	body        []byte
	attempts    int
}

// deliverDue tries every delivery whose time has come.
func (d *Dispatcher) deliverDue(ctx context.Context) {
	due, err := d.due(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("alerts: reading the queue failed", "err", err)
		}
		return
	}
	for _, dl := range due {
		if ctx.Err() != nil {
			return
		}
		d.attempt(ctx, dl)
	}
}

func (d *Dispatcher) due(ctx context.Context) ([]delivery, error) {
	rows, err := d.opts.DB.QueryContext(ctx, `SELECT id, alert, event_id, body, attempts FROM alert_deliveries
		WHERE state = 'pending' AND next_attempt <= ? ORDER BY id LIMIT ?`, d.opts.Now().UnixNano(), deliverBatch)
	if err != nil {
		return nil, fmt.Errorf("alerts: queue: %w", err)
	}
	defer rows.Close()
	var out []delivery
	for rows.Next() {
		var dl delivery
		if err := rows.Scan(&dl.id, &dl.alert, &dl.eventID, &dl.body, &dl.attempts); err != nil {
			return nil, fmt.Errorf("alerts: queue: %w", err)
		}
		out = append(out, dl)
	}
	return out, rows.Err()
}

// attempt sends one delivery and records the outcome in the queue and the
// audit log.
func (d *Dispatcher) attempt(ctx context.Context, dl delivery) {
	r := d.rules[dl.alert]
	if r == nil {
		d.finish(ctx, dl, nil, "failed", "the alert is no longer configured")
		return
	}
	err := d.post(ctx, r, dl)
	if err != nil && ctx.Err() != nil {
		return // cut short by shutdown: the attempt does not count, the row stays queued
	}
	// A finished attempt is recorded even if shutdown began meanwhile.
	ctx = context.WithoutCancel(ctx)
	dl.attempts++
	switch {
	case err == nil:
		d.finish(ctx, dl, r, "delivered", "")
	case dl.attempts >= r.cfg.MaxAttempts:
		d.finish(ctx, dl, r, "failed", err.Error())
	default:
		d.retry(ctx, dl, r, err.Error())
	}
}

func (d *Dispatcher) post(ctx context.Context, r *rule, dl delivery) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.Webhook, bytes.NewReader(dl.body))
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(d.opts.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Gatehouse-Alerts/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(r.secret, ts, dl.body))
	req.Header.Set(HeaderDelivery, strconv.FormatInt(dl.id, 10))
	req.Header.Set(HeaderAlert, r.cfg.Name)
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry a token (Slack): keep it out of logs
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// backoff is the wait after the n-th failed attempt.
func backoff(base time.Duration, n int) time.Duration {
	b := base
	for i := 1; i < n && b < maxBackoff; i++ {
		b *= 2
	}
	return min(b, maxBackoff)
}

func (d *Dispatcher) retry(ctx context.Context, dl delivery, r *rule, why string) {
	next := d.opts.Now().Add(backoff(r.cfg.Backoff, dl.attempts))
	if _, err := d.opts.DB.ExecContext(ctx, `UPDATE alert_deliveries SET attempts = ?, next_attempt = ?, last_error = ? WHERE id = ?`,
		dl.attempts, next.UnixNano(), why, dl.id); err != nil {
		d.log.Error("alerts: queue update failed", "delivery", dl.id, "err", err)
		return
	}
	d.log.Warn("alert delivery failed; will retry", "alert", dl.alert, "delivery", dl.id, "attempt", dl.attempts,
		"err", why, "next", next.UTC().Format(time.RFC3339))
	d.outcome(ctx, EventRetry, dl, r, why)
}

func (d *Dispatcher) finish(ctx context.Context, dl delivery, r *rule, state, why string) {
	if _, err := d.opts.DB.ExecContext(ctx, `UPDATE alert_deliveries SET state = ?, attempts = ?, last_error = ? WHERE id = ?`,
		state, dl.attempts, why, dl.id); err != nil {
		d.log.Error("alerts: queue update failed", "delivery", dl.id, "err", err)
		return
	}
	typ := EventDelivered
	if state == "failed" {
		typ = EventFailed
		d.log.Error("alert delivery given up", "alert", dl.alert, "delivery", dl.id, "attempts", dl.attempts, "err", why)
	}
	d.outcome(ctx, typ, dl, r, why)
}

// outcome audits one attempt's result and counts it.
func (d *Dispatcher) outcome(ctx context.Context, typ string, dl delivery, r *rule, why string) {
	dest := "(unconfigured)"
	if r != nil {
		if u, err := url.Parse(r.cfg.Webhook); err == nil {
			dest = u.Scheme + "://" + u.Host // never the path: webhook URLs often embed a token
		}
	}
	reason := fmt.Sprintf("alert %s: %s to %s (attempt %d)", dl.alert, strings.TrimPrefix(typ, "alert."), dest, dl.attempts)
	if why != "" {
		reason += ": " + why
	}
	ev := audit.Event{Type: typ, Reason: reason, Details: map[string]any{"alert": dl.alert, "delivery": dl.id,
		"event_id": dl.eventID, "attempts": int64(dl.attempts)}}
	if err := d.opts.Audit.Append(context.WithoutCancel(ctx), ev); err != nil {
		d.log.Error("alerts: audit append failed", "delivery", dl.id, "err", err)
	}
	if d.opts.Metrics != nil {
		d.opts.Metrics.AlertDelivery(dl.alert, strings.TrimPrefix(typ, "alert."))
	}
}
