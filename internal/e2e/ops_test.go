package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// opsConfig turns on the operations listener on a loopback port.
const opsConfig = "metrics:\n  listen: \"127.0.0.1:0\"\n"

// scrape fetches the real /metrics of the running gateway and returns each
// sample line as "name{labels}" -> value.
func scrape(t *testing.T, w *world) map[string]float64 {
	t.Helper()
	code, body := httpGet(t, "http://"+w.app.MetricsAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the web UI's self-signed test certificate
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitMetric polls the real endpoint until sample satisfies cond.
func waitMetric(t *testing.T, w *world, sample string, cond func(float64) bool) {
	t.Helper()
	var last float64
	waitFor(t, sample, func() bool {
		last = scrape(t, w)[sample]
		return cond(last)
	})
}

func TestMetricsMoveWithRealSessions(t *testing.T) {
	w := newWorldWith(t, "", opsConfig)
	alice := w.newUser("alice", time.Hour)
	before := scrape(t, w)
	for _, name := range []string{"gatehouse_approvals_pending", "gatehouse_audit_queue_depth", "go_goroutines"} {
		if _, ok := before[name]; !ok {
			t.Fatalf("%s missing from /metrics", name)
		}
	}

	if r := alice.run("ssh", "db-1", "echo hi"); r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("session through the gateway: %s", r)
	}
	// The session's end (recording sealed, last flush) lands just after the
	// client exits: wait for it, then compare.
	waitMetric(t, w, "gatehouse_recording_flush_seconds_count", func(v float64) bool {
		return v > before["gatehouse_recording_flush_seconds_count"]
	})
	after := scrape(t, w)
	for _, sample := range []string{
		`gatehouse_session_starts_total{kind="exec"}`,
		`gatehouse_certificates_issued_total{kind="session"}`,
		`gatehouse_target_dial_seconds_count{target="db-1"}`,
	} {
		if got := after[sample] - before[sample]; got != 1 {
			t.Errorf("%s moved by %v after one session, want 1", sample, got)
		}
	}
	if after["gatehouse_recording_bytes_total"] < before["gatehouse_recording_bytes_total"]+3 {
		t.Errorf("recording bytes did not grow by the 3 bytes of output: %v -> %v", before["gatehouse_recording_bytes_total"], after["gatehouse_recording_bytes_total"])
	}
	// session.start and the exec command at least.
	if after["gatehouse_audit_append_seconds_count"] < before["gatehouse_audit_append_seconds_count"]+2 {
		t.Errorf("audit appends not timed: %v -> %v", before["gatehouse_audit_append_seconds_count"], after["gatehouse_audit_append_seconds_count"])
	}

	// A live session shows as active until it ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	long := alice.cmd(ctx, "ssh", "-p", w.port, "root@db-1@127.0.0.1", "cat")
	stdin, err := long.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, w, `gatehouse_sessions_active{kind="exec"}`, func(v float64) bool { return v == 1 })
	stdin.Close() // cat sees EOF and exits; the session ends
	long.Wait()
	waitMetric(t, w, `gatehouse_sessions_active{kind="exec"}`, func(v float64) bool { return v == 0 })

	// Refusals by reason class, auth failures by method.
	if r := alice.direct("root", "dead-1", "id"); r.code == 0 {
		t.Fatalf("dead target reachable: %s", r)
	}
	foreign := w.newUser("alice", time.Hour)
	foreignCA, _ := newKeyPair(t)
	signer, _ := ssh.NewSignerFromKey(foreignCA)
	fc := readCert(t, foreign.key+"-cert.pub")
	fc.Signature = nil
	fc.SignCert(rand.Reader, signer)
	foreign.setCert(fc)
	if r := foreign.direct("root", "db-1", "id"); r.code != 255 {
		t.Fatalf("foreign certificate accepted: %s", r)
	}
	end := scrape(t, w)
	if got := end[`gatehouse_session_refusals_total{reason="target_unreachable"}`]; got != 1 {
		t.Errorf("unreachable refusals = %v, want 1", got)
	}
	if got := end[`gatehouse_auth_failures_total{method="publickey"}`]; got < 1 {
		t.Errorf("publickey auth failures = %v, want >= 1", got)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	w := newWorldWith(t, "", opsConfig)
	base := "http://" + w.app.MetricsAddr()
	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	// The recordings store goes away: not ready, and it says which part.
	dir := w.app.Config.Recording.Dir
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	code, body := httpGet(t, base+"/readyz")
	if code != 503 || !strings.HasPrefix(body, "not ready\nrecordings: recorder: recordings store not writable: ") {
		t.Fatalf("/readyz without a recordings store: %d %q", code, body)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz after the store is back: %d %q", code, body)
	}
	// The operations endpoints are not on the web UI's listener.
	if code, _ := httpGet(t, "https://"+w.app.WebAddr()+"/metrics"); code != 404 {
		t.Fatalf("/metrics on the web listener: %d, want 404", code)
	}
	// Once the audit writer is closed, the gateway is no longer ready.
	w.app.Audit.Close()
	code, body = httpGet(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "audit: audit: log is closed") {
		t.Fatalf("/readyz with the audit writer closed: %d %q", code, body)
	}
}
