package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestClip(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", "root@db-1", 16, "root@db-1"},
		{"exact", "abcd", 4, "abcd"},
		{"long", strings.Repeat("a", 10), 4, "aaaa...[6 bytes cut]"},
		{"utf-8 boundary", "ééé", 3, "é...[4 bytes cut]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clip(tt.in, tt.n); got != tt.want {
				t.Fatalf("clip(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
		})
	}
}

func TestFailureLimiterPerSourceAndSummary(t *testing.T) {
	var l failureLimiter
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	written := 0
	for i := 0; i < 300; i++ {
		if ok, _, _ := l.allow("127.0.0.2", t0); ok {
			written++
		}
	}
	if written != failuresPerSource {
		t.Fatalf("%d events written from one source, want %d", written, failuresPerSource)
	}
	// Another source is not starved by the first.
	if ok, _, _ := l.allow("127.0.0.3", t0); !ok {
		t.Fatal("a second source was refused")
	}
	// The next window reports what the last one dropped.
	ok, dropped, start := l.allow("127.0.0.2", t0.Add(failureWindow))
	if !ok || dropped["127.0.0.2"] != 300-failuresPerSource || !start.Equal(t0) {
		t.Fatalf("next window: ok %v dropped %v start %v", ok, dropped, start)
	}
}

func TestFailureLimiterTotal(t *testing.T) {
	var l failureLimiter
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	written := 0
	for i := 0; i < 1000; i++ {
		if ok, _, _ := l.allow(fmt.Sprintf("10.0.%d.%d", i/250, i%250), t0); ok {
			written++
		}
	}
	if written > failuresTotal {
		t.Fatalf("%d events written in one window, limit %d", written, failuresTotal)
	}
}
