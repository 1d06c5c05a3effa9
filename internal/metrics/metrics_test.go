package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

func TestRefusalClass(t *testing.T) {
	tests := []struct{ reason, want string }{
		{"cannot reach dead-1 (connection refused)", "target_unreachable"},
		{"target wrongkey-1 presented an unknown host key SHA256:abc; refusing to connect", "target_host_key"},
		{"db-1 refused the login \"root\": check that its sshd trusts", "target_auth"},
		{"recording failed to start: disk full", "recording_failed"},
		{"your access is locked: incident", "locked"},
		{"no role allows login root on db-1", "policy"},
		{"", "policy"},
	}
	for _, tt := range tests {
		if got := RefusalClass(tt.reason); got != tt.want {
			t.Errorf("RefusalClass(%q) = %q, want %q", tt.reason, got, tt.want)
		}
	}
}

func TestActiveSessionsNeverGoNegative(t *testing.T) {
	m := New()
	start := func(id, serial string) {
		m.ObserveEvent(audit.Event{Type: audit.EventSessionStart, SessionID: id,
			Details: map[string]any{"kind": "shell", "session_cert_serial": serial}})
	}
	end := func(id string) {
		m.ObserveEvent(audit.Event{Type: audit.EventSessionEnd, SessionID: id, Details: map[string]any{"kind": "shell"}})
	}
	end("from-before-a-crash") // ended by crash recovery: never counted as started here
	start("a", "7")
	start("b", "7") // second channel on the same target connection: same certificate
	start("c", "8")
	end("a")
	end("a") // twice
	if got := testutil.ToFloat64(m.activeSessions.WithLabelValues("shell")); got != 2 {
		t.Fatalf("active shell sessions = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.certsIssued.WithLabelValues("session")); got != 2 {
		t.Fatalf("session certificates = %v, want 2 (serials 7 and 8)", got)
	}
	var nilM *Metrics
	nilM.ObserveEvent(audit.Event{Type: audit.EventSessionStart}) // off: no panic
}
