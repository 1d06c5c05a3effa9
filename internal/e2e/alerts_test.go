package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// webhookReceiver is a real HTTP server standing in for an alert receiver.
// It checks every signature with its own HMAC code and answers 500 on
// /flaky until accept is set.
type webhookReceiver struct {
	secret []byte
	url    string

	mu       sync.Mutex
	accept   bool
	attempts []hookAttempt
}

type hookAttempt struct {
	path, delivery, alert string
	body                  []byte
	signatureOK           bool
	status                int
}

func startReceiver(t *testing.T, secret []byte) *webhookReceiver {
	rv := &webhookReceiver{secret: secret}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rv}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	rv.url = "http://" + ln.Addr().String()
	return rv
}

func (rv *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m := hmac.New(sha256.New, rv.secret)
	m.Write([]byte(r.Header.Get("X-Gatehouse-Timestamp") + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	a := hookAttempt{path: r.URL.Path, delivery: r.Header.Get("X-Gatehouse-Delivery"), alert: r.Header.Get("X-Gatehouse-Alert"),
		body: body, signatureOK: hmac.Equal([]byte(want), []byte(r.Header.Get("X-Gatehouse-Signature"))), status: 200}
	rv.mu.Lock()
	if r.URL.Path == "/flaky" && !rv.accept {
		a.status = 500
	}
	rv.attempts = append(rv.attempts, a)
	rv.mu.Unlock()
	w.WriteHeader(a.status)
}

func (rv *webhookReceiver) seen(path string, status int) []hookAttempt {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var out []hookAttempt
	for _, a := range rv.attempts {
		if a.path == path && (status == 0 || a.status == status) {
			out = append(out, a)
		}
	}
	return out
}

func TestAlertsSurviveRestartAndAreSigned(t *testing.T) {
	secret := []byte("4f9c1e0a7b2d8e6f3a5c9b1d7e0f2a4c")
	rv := startReceiver(t, secret)
	secretFile := filepath.Join(t.TempDir(), "alert-secret")
	os.WriteFile(secretFile, append(secret, '\n'), 0o600)
	w := newWorldWith(t, "", fmt.Sprintf(`alerts:
  - name: prod-sessions
    events: [session.start]
    where: {target_labels: {env: prod}}
    webhook: "%[1]s/flaky"
    secret_file: %[2]s
    backoff: 50ms
  - name: locks
    events: [lock.created]
    webhook: "%[1]s/locks"
    format: slack
    secret_file: %[2]s
`, rv.url, secretFile))
	alice := w.newUser("alice", time.Hour)
	if r := alice.run("ssh", "db-1", "echo hi"); r.code != 0 {
		t.Fatalf("session: %s", r)
	}
	waitFor(t, "two failed attempts, audited", func() bool {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: "alert.retry"})
		return len(rv.seen("/flaky", 500)) >= 2 && len(evs) >= 2
	})

	// Stop the gateway with the alert still queued, then start it again.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	w.app.Close(ctx)
	cancel()
	rv.mu.Lock()
	rv.accept = true
	rv.mu.Unlock()
	log := slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a2, err := app.Start(w.app.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	w.app = a2
	// The queued delivery keeps its backoff schedule across the restart; on a
	// slow machine that is past the usual wait, so wait for it longer.
	for deadline := time.Now().Add(3 * time.Minute); len(rv.seen("/flaky", 200)) != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the delivery after the restart")
		}
	}

	all := rv.seen("/flaky", 0)
	for i, a := range all {
		if !a.signatureOK || a.delivery != all[0].delivery || string(a.body) != string(all[0].body) || a.alert != "prod-sessions" {
			t.Fatalf("attempt %d differs or is badly signed: %+v (first %+v)", i, a, all[0])
		}
	}
	var got struct {
		Alert string            `json:"alert"`
		Event audit.EventRecord `json:"event"`
	}
	if err := json.Unmarshal(all[0].body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Alert != "prod-sessions" || got.Event.Type != "session.start" || got.Event.User != "alice" || got.Event.Target != "db-1" || got.Event.Hash == "" {
		t.Fatalf("alert body: %s", all[0].body)
	}

	// Each outcome is in the audit log, and the webhook path (which may hold
	// a token) is not.
	waitFor(t, "alert.delivered audited", func() bool {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: "alert.delivered"})
		return len(evs) == 1
	})
	delivered, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: "alert.delivered"})
	retries, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: "alert.retry"})
	// Every failed attempt the gateway finished is one alert.retry; the
	// delivery is the next attempt.
	wantReason := fmt.Sprintf("alert prod-sessions: delivered to %s (attempt %d)", rv.url, len(retries)+1)
	if delivered[0].Reason != wantReason || len(retries) < 2 || strings.Contains(retries[0].Reason, "/flaky") {
		t.Fatalf("audit: delivered %q (want %q), %d retries (first %q)", delivered[0].Reason, wantReason, len(retries), retries[0].Reason)
	}

	// A lock written by another process (as `gatehouse admin lock` does)
	// reaches the locks alert: the dispatcher follows the log, not memory.
	cli, err := app.OpenAudit(w.app.Env, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cli.Append(context.Background(), audit.Event{Type: audit.EventLock, User: "root", Reason: "locked mallory: stolen laptop",
		Details: map[string]any{"locked_user": "mallory"}})
	cli.Close()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lock alert", func() bool { return len(rv.seen("/locks", 200)) == 1 })
	lock := rv.seen("/locks", 200)[0]
	if !lock.signatureOK || !strings.Contains(string(lock.body), "Gatehouse alert *locks*: `lock` user=root — locked mallory: stolen laptop") {
		t.Fatalf("lock alert: %+v %s", lock, lock.body)
	}
	if n := len(rv.seen("/flaky", 200)); n != 1 {
		t.Fatalf("session alert delivered %d times", n)
	}
}
