package config

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Alert sends matching audit events to a webhook as they happen.
type Alert struct {
	// Name identifies the alert in the audit log and metrics. Required.
	Name string `yaml:"name"`
	// Events are the event names that fire the alert (see AlertEvents).
	// Empty is an error: an alert that matches nothing is a typo.
	Events []string `yaml:"events"`
	// Where narrows the events further. Zero means no narrowing.
	Where AlertWhere `yaml:"where"`
	// Webhook is the http(s) URL the alert is POSTed to. Required.
	Webhook string `yaml:"webhook"`
	// Format is "json" (the event as JSON) or "slack" (a Slack incoming
	// webhook message). Empty means "json".
	Format string `yaml:"format"`
	// SecretFile holds the HMAC-SHA256 key that signs every delivery
	// (X-Gatehouse-Signature). Required: receivers must be able to tell a
	// forged alert from a real one.
	SecretFile string `yaml:"secret_file"`
	// Backoff is the wait before the first retry of a failed delivery; it
	// doubles after each failure, up to 10m. Zero means 5s.
	Backoff time.Duration `yaml:"backoff"`
	// MaxAttempts is how many times a delivery is tried before it is given
	// up (and audited as alert.failed). Zero means 20.
	MaxAttempts int `yaml:"max_attempts"`
}

// AlertWhere narrows the events of an alert. Every set field must match.
type AlertWhere struct {
	// TargetLabels must all be labels of the event's configured target.
	// Empty matches every event, with or without a target.
	TargetLabels map[string]string `yaml:"target_labels"`
}

// AlertEvents are the event names an alert may list, with what each means.
// Most are audit event types; a few name a condition across several types.
var AlertEvents = map[string]string{
	"auth.failure":     "an SSH authentication was refused",
	"auth.lockout":     "a user's TOTP was locked after too many wrong codes (audit type mfa.lockout)",
	"mfa.lockout":      "same as auth.lockout",
	"mfa.failure":      "a wrong TOTP code",
	"login":            "a web/OIDC login",
	"cert.issued":      "a user certificate was issued",
	"session.start":    "a session started on a target",
	"session.end":      "a session ended",
	"session.denied":   "a session was refused (policy, target unreachable, recording failure)",
	"command":          "a command ran in a session",
	"command.denied":   "a command was refused by policy (session.denied naming a command, or command.denied)",
	"command.warn":     "an exec request matched a warn.commands rule (it ran)",
	"file":             "a file transfer operation",
	"forward.start":    "a port forward was opened",
	"forward.denied":   "a port forward was refused",
	"recording.failed": "a session was refused or ended because its recording failed, or its recording is incomplete",
	"lock":             "a user was locked or unlocked",
	"lock.created":     "a user was locked",
	"admin.change":     "an admin changed configuration or a user",
	"recording.access": "a recording was opened or exported",
	"audit.export":     "the audit log was exported",
	"request.created":  "an access request was filed (request.created)",
	"request.approved": "an access request was approved",
	"request.denied":   "an access request was denied",
	"request.expired":  "an access grant or request expired",
}

func (c *Config) validateAlerts() error {
	seen := map[string]bool{}
	for i, a := range c.Alerts {
		key := fmt.Sprintf("alerts[%d]", i)
		if !targetNameRE.MatchString(a.Name) {
			return c.fail(key+".name", "%q: use lower-case letters, digits, '.', '_' and '-'", a.Name)
		}
		if seen[a.Name] {
			return c.fail(key+".name", "alert %q is defined twice", a.Name)
		}
		seen[a.Name] = true
		if len(a.Events) == 0 {
			return c.fail(key+".events", "list at least one event")
		}
		for _, e := range a.Events {
			if _, ok := AlertEvents[e]; !ok {
				return c.fail(key+".events", "unknown event %q; known: %s", e, alertEventNames())
			}
		}
		u, err := url.Parse(a.Webhook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return c.fail(key+".webhook", "%q is not an http(s) URL", a.Webhook)
		}
		if a.Format != "" && a.Format != "json" && a.Format != "slack" {
			return c.fail(key+".format", "%q: want json or slack", a.Format)
		}
		if a.Backoff < 0 || a.MaxAttempts < 0 {
			return c.fail(key, "backoff and max_attempts must not be negative")
		}
		if a.SecretFile == "" {
			return c.fail(key+".secret_file", "required: every delivery is signed with it")
		}
	}
	return nil
}

func alertEventNames() string {
	names := make([]string, 0, len(AlertEvents))
	for n := range AlertEvents {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
