package alerts

import (
	"strings"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// Audit event types the dispatcher writes about its deliveries.
const (
	EventDelivered = "alert.delivered" // the webhook answered 2xx
	EventRetry     = "alert.retry"     // an attempt failed; another follows
	EventFailed    = "alert.failed"    // given up after max_attempts
)

// matchesName reports whether ev is the event called name in an alert's
// events list (config.AlertEvents).
func matchesName(name string, ev audit.Event) bool {
	switch name {
	case "auth.lockout", "mfa.lockout":
		return ev.Type == audit.EventMFALockout
	case "lock.created":
		return ev.Type == audit.EventLock && strings.HasPrefix(ev.Reason, "locked ")
	case "recording.failed":
		return ev.Type == "recording.failed" ||
			(ev.Type == audit.EventSessionDenied && strings.HasPrefix(ev.Reason, "recording")) ||
			(ev.Type == audit.EventSessionEnd && ev.Details["recording_complete"] == false)
	case "command.denied":
		cmd, _ := ev.Details["command"].(string)
		return ev.Type == "command.denied" || (ev.Type == audit.EventSessionDenied && cmd != "")
	}
	return ev.Type == name
}

// rule is one configured alert, ready to match.
type rule struct {
	cfg    config.Alert
	secret []byte
}

// matches reports whether ev fires r; labels are the event target's labels
// (nil for no or an unknown target).
func (r *rule) matches(ev audit.Event, labels map[string]string) bool {
	if strings.HasPrefix(ev.Type, "alert.") {
		return false
	}
	hit := false
	for _, name := range r.cfg.Events {
		if matchesName(name, ev) {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	for k, v := range r.cfg.Where.TargetLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
