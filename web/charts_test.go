package web

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/recorder"
)

// Refusal reasons carry text from the other side (SSH user names, logins):
// the server-drawn charts escape every label, so a reason cannot inject
// markup into the overview page.
func TestChartsEscapeLabels(t *testing.T) {
	evil := `<script>alert(1)</script>"><img src=x onerror=alert(2)>`
	h := string(hBars("Refusals by reason", []recorder.Count{{Label: evil, N: 3}}, "#000"))
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	d := string(dayBars("per day", day, day, []recorder.DayCount{{Day: day, Series: evil, N: 2}}, humanBytes))
	for _, svg := range []string{h, d} {
		if strings.Contains(svg, "<script") || strings.Contains(svg, "<img") || !strings.Contains(svg, "&lt;script&gt;") {
			t.Fatalf("label not escaped: %s", svg)
		}
	}
}

func TestHumanBytesAndKindLabel(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for _, tc := range []struct{ kind, cmd, want string }{
		{"exec", "bash", "shell (script on stdin)"}, {"exec", "bash -c id", "exec"}, {"shell", "", "shell"},
		{"subsystem:sftp", "", "sftp (file transfer)"}, {"exec", "uname -a", "exec"},
	} {
		if got := kindLabel(tc.kind, tc.cmd); got != tc.want {
			t.Errorf("kindLabel(%q, %q) = %q, want %q", tc.kind, tc.cmd, got, tc.want)
		}
	}
}
