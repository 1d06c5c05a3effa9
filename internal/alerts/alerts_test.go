package alerts

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

func TestRuleMatches(t *testing.T) {
	prod := map[string]string{"env": "prod", "role": "db"}
	dev := map[string]string{"env": "dev"}
	tests := []struct {
		name   string
		events []string
		where  map[string]string
		ev     audit.Event
		labels map[string]string
		want   bool
	}{
		{"session on prod", []string{"session.start"}, map[string]string{"env": "prod"},
			audit.Event{Type: "session.start", Target: "db-1"}, prod, true},
		{"session on dev", []string{"session.start"}, map[string]string{"env": "prod"},
			audit.Event{Type: "session.start", Target: "web-1"}, dev, false},
		{"session on unknown target", []string{"session.start"}, map[string]string{"env": "prod"},
			audit.Event{Type: "session.start", Target: "docker:x"}, nil, false},
		{"other type", []string{"session.start"}, nil, audit.Event{Type: "session.end"}, prod, false},
		{"auth.lockout is mfa.lockout", []string{"auth.lockout"}, nil, audit.Event{Type: "mfa.lockout", User: "bob"}, nil, true},
		{"lock.created", []string{"lock.created"}, nil, audit.Event{Type: "lock", Reason: "locked bob: gone"}, nil, true},
		{"unlock is not lock.created", []string{"lock.created"}, nil, audit.Event{Type: "lock", Reason: "unlocked bob"}, nil, false},
		{"recording failed to start", []string{"recording.failed"}, nil,
			audit.Event{Type: "session.denied", Reason: "recording failed to start: disk full"}, nil, true},
		{"incomplete recording", []string{"recording.failed"}, nil,
			audit.Event{Type: "session.end", Details: map[string]any{"recording_complete": false}}, nil, true},
		{"complete recording", []string{"recording.failed"}, nil,
			audit.Event{Type: "session.end", Details: map[string]any{"recording_complete": true}}, nil, false},
		{"command denied by policy", []string{"command.denied"}, nil,
			audit.Event{Type: "session.denied", Details: map[string]any{"command": "rm -rf /"}}, nil, true},
		{"shell denied is not a command", []string{"command.denied"}, nil,
			audit.Event{Type: "session.denied", Details: map[string]any{"command": ""}}, nil, false},
		{"alert events never fire alerts", []string{"alert.failed"}, nil, audit.Event{Type: "alert.failed"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &rule{cfg: config.Alert{Events: tt.events, Where: config.AlertWhere{TargetLabels: tt.where}}}
			if got := r.matches(tt.ev, tt.labels); got != tt.want {
				t.Fatalf("matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"alert":"x"}`)
	sig := Sign(secret, "1700000000", body)
	tests := []struct {
		name, ts, sig string
		secret, body  []byte
		want          bool
	}{
		{"genuine", "1700000000", sig, secret, body, true},
		{"body changed", "1700000000", sig, secret, []byte(`{"alert":"y"}`), false},
		{"timestamp changed (replay later)", "1700000100", sig, secret, body, false},
		{"other secret", "1700000000", sig, []byte("another-secret-of-32-bytes-long!"), body, false},
		{"empty signature", "1700000000", "", secret, body, false},
	}
	for _, tt := range tests {
		if got := Verify(tt.secret, tt.ts, tt.body, tt.sig); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBackoffDoublesAndCaps(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := backoff(time.Second, i+1); got != w {
			t.Errorf("backoff after attempt %d = %v, want %v", i+1, got, w)
		}
	}
	if got := backoff(time.Second, 40); got != maxBackoff {
		t.Errorf("backoff after 40 attempts = %v, want the cap %v", got, maxBackoff)
	}
}
