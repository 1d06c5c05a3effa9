package e2e

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder"
)

// s3World is a world whose recordings go to a real versitygw bucket, with
// object lock, the web UI over plain HTTP and the operations listener.
func s3World(t *testing.T) (*world, *testenv.VersityGW) {
	t.Helper()
	gw := testenv.StartVersityGW(t)
	gw.SetEnv(t) // the gateway's AWS credential chain (and its child processes')
	gw.CreateBucket(t, "recs", true)
	w := newWorldWith(t, "", "web:\n  listen: \"127.0.0.1:0\"\n  insecure_http: true\n"+opsConfig+
		"recording:\n  s3:\n    endpoint: "+gw.Endpoint+"\n    bucket: recs\n    prefix: gh/\n    object_lock_days: 1\n")
	return w, gw
}

// recordingObjects lists the object keys of one recording in the bucket.
func recordingObjects(t *testing.T, gw *testenv.VersityGW, recID string) []string {
	t.Helper()
	out, err := gw.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("recs"),
		Prefix: aws.String("gh/" + recID + "/")})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// TestS3RecordedSessionReplays: a real ssh session through the gateway is
// recorded to the object store (nothing in the local directory), and the
// recording plays through `gatehouse recording export` and the web UI's
// cast endpoint.
func TestS3RecordedSessionReplays(t *testing.T) {
	w, gw := s3World(t)
	alice := w.newUser("alice", time.Hour)
	if r := alice.direct("root", "db-1", "echo s3-recorded-$((6*7))"); r.code != 0 || r.stdout != "s3-recorded-42\n" {
		t.Fatalf("session: %s", r)
	}
	s := lastSession(t, w)
	meta, err := w.app.Recs.Meta(context.Background(), s.RecordingID)
	if err != nil || !meta.Complete {
		t.Fatalf("recording %+v err %v", meta, err)
	}
	if keys := recordingObjects(t, gw, s.RecordingID); len(keys) < 2 {
		t.Fatalf("recording objects %v", keys)
	}
	if ents, _ := os.ReadDir(w.app.Config.Recording.Dir); len(ents) != 0 {
		t.Fatalf("recording written to the local directory: %v", ents)
	}
	bin := gatehouseBinary(t)
	out := filepath.Join(w.dir, "s3.cast")
	w.cli(t, bin, "recording", "export", s.RecordingID, "--out", out)
	if cast, _ := os.ReadFile(out); !strings.Contains(string(cast), "s3-recorded-42") {
		t.Fatalf("exported cast:\n%s", cast)
	}
	cookie := "alice-s3-session-token-for-test"
	h := sha256.Sum256([]byte(cookie))
	if _, err := w.app.Env.DB.Exec(`INSERT INTO web_sessions(id_hash, user_name, issuer, subject, groups, mfa_at, csrf, client_addr,
		user_agent, created, expires) VALUES (?, 'alice', 'iss', 'sub', '', ?, 'csrf', '', '', ?, ?)`,
		h[:], time.Now().Unix(), time.Now().Unix(), time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+w.app.WebAddr()+"/sessions/"+s.ID+"/cast", nil)
	req.AddCookie(&http.Cookie{Name: "gh_session", Value: cookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "s3-recorded-42") {
		t.Fatalf("web cast: %d\n%s", resp.StatusCode, body)
	}
}

// TestS3StoreDownRefusesSessions: with the object store down a new session
// is refused with the same line as an unwritable directory (never run
// unrecorded) and /readyz answers 503 naming the store; once it is back,
// sessions run again.
func TestS3StoreDownRefusesSessions(t *testing.T) {
	w, gw := s3World(t)
	alice := w.newUser("alice", time.Hour)
	base := "http://" + w.app.MetricsAddr()
	if code, _ := httpGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz with the store up: %d", code)
	}
	gw.Stop()
	r := alice.direct("root", "db-1", "echo should-not-run")
	if r.code == 0 || strings.Contains(r.stdout, "should-not-run") ||
		!strings.Contains(r.stderr, "gatehouse: this session cannot be recorded, so it is refused") {
		t.Fatalf("session with the store down: %s", r)
	}
	code, body := httpGet(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "recordings: recorder: object store bucket recs unreachable") {
		t.Fatalf("/readyz with the store down: %d %q", code, body)
	}
	gw.Start()
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz with the store back: %d %q", code, body)
	}
	if r := alice.direct("root", "db-1", "echo back"); r.code != 0 || r.stdout != "back\n" {
		t.Fatalf("session with the store back: %s", r)
	}
}

// TestS3Kill9GatewaySealsOnRestart: a gateway process recording to the
// object store is killed mid-session; the restart seals the recording as
// incomplete with one more object (nothing deleted under object lock) and
// it plays up to the last flush.
func TestS3Kill9GatewaySealsOnRestart(t *testing.T) {
	bin := gatehouseBinary(t)
	w, gw := s3World(t)
	alice := w.newUser("alice", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.app.Close(ctx) // hand the data directory to a real process
	cancel()
	proc, port := serveProcess(t, bin, w.configFile)
	c := alice.cmd(context.Background(), "ssh", "-tt", "-p", port, "root@db-1@127.0.0.1")
	term := testenv.StartPTY(t, c, 80, 24)
	term.Expect(t, "# ", 15*time.Second)
	term.Send("echo before-crash-$((1+1))\r")
	term.Expect(t, "before-crash-2", 15*time.Second)
	list := w.cli(t, bin, "recording", "list")
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	deadline := time.Now().Add(45 * time.Second)
	for !castHolds(t, w, bin, id, "before-crash-2") { // wait for the flush to reach the store
		if time.Now().After(deadline) {
			t.Fatal("the output never reached the object store")
		}
		time.Sleep(200 * time.Millisecond)
	}
	proc.Process.Signal(syscall.SIGKILL)
	proc.Wait()
	term.Wait()
	before := len(recordingObjects(t, gw, id))

	serveProcess(t, bin, w.configFile) // the restart recovers (on PostgreSQL once the lease has run out)
	waitFor(t, "the killed instance's recording to be sealed", func() bool {
		return strings.Contains(w.cli(t, bin, "recording", "list"), "partial")
	})
	if after := len(recordingObjects(t, gw, id)); after != before+1 {
		t.Fatalf("objects before the seal %d, after %d (want one final segment added)", before, after)
	}
	out := filepath.Join(w.dir, "crash.cast")
	msg := w.cli(t, bin, "recording", "export", id, "--out", out)
	if !strings.Contains(msg, "INCOMPLETE: gateway stopped unexpectedly") {
		t.Fatalf("export: %s", msg)
	}
	if cast, _ := os.ReadFile(out); !strings.Contains(string(cast), "before-crash-2") {
		t.Fatalf("the recovered recording lost what was shown before the crash:\n%s", cast)
	}
	if v := w.cli(t, bin, "audit", "verify"); !strings.HasPrefix(v, "OK: ") {
		t.Fatalf("audit verify: %s", v)
	}
}

// castHolds reports whether the recording, exported by the CLI from the
// object store while still open, already shows text: a flush reached the
// store.
func castHolds(t *testing.T, w *world, bin, recID, text string) bool {
	t.Helper()
	out := filepath.Join(t.TempDir(), "live.cast")
	if err := exec.Command(bin, "recording", "export", recID, "--out", out, "--config", w.configFile).Run(); err != nil {
		return false
	}
	b, _ := os.ReadFile(out)
	return strings.Contains(string(b), text)
}

// TestS3StoreDownEndsLiveSession: the object store goes away while a
// session is printing; the session is ended with the same line as a full
// disk (never continues unrecorded), and the recording row says why. Its
// final record cannot be written then; once the store is back the recovery
// pass seals it as incomplete and it plays.
func TestS3StoreDownEndsLiveSession(t *testing.T) {
	w, gw := s3World(t)
	alice := w.newUser("alice", time.Hour)
	done := make(chan result, 1)
	go func() {
		done <- alice.direct("root", "db-1", "for i in $(seq 3000); do echo tick-$i; sleep 0.1; done; echo finished")
	}()
	var recID string
	waitFor(t, "the live session's recording objects", func() bool {
		rows := sessionRows(t, w, recorder.SessionFilter{Live: true})
		if len(rows) == 0 || rows[0].RecordingID == "" {
			return false
		}
		recID = rows[0].RecordingID
		rc, err := w.app.Recs.OpenCast(context.Background(), recID, false)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(rc)
		return strings.Contains(string(b), "tick-1") // a flush with output reached the store
	})
	gw.Stop()
	var r result
	select {
	case r = <-done:
	case <-time.After(120 * time.Second):
		t.Fatal("the session went on with the object store down")
	}
	if r.code == 0 || strings.Contains(r.stdout, "finished") ||
		!strings.Contains(r.stderr, "gatehouse: session ended: the recording could not be written") {
		t.Fatalf("session with the store gone: %s", r)
	}
	// The seal itself cannot reach the store either; the row is finished
	// once its write has failed (retries bounded by the request timeout).
	waitFor(t, "the recording row to be finished", func() bool {
		m, err := w.app.Recs.Meta(context.Background(), recID)
		return err == nil && !m.Ended.IsZero()
	})
	meta, err := w.app.Recs.Meta(context.Background(), recID)
	if err != nil || meta.Complete || !strings.Contains(meta.Reason, "recording incomplete") || !strings.Contains(meta.Reason, "object store") {
		t.Fatalf("recording meta %+v err %v", meta, err)
	}
	t.Logf("reason: %s", meta.Reason)
	// Failed closed, the seal pending until the store is back.
	s := lastSession(t, w)
	if !meta.SealPending || s.End.IsZero() || s.RecordingComplete || !strings.Contains(s.EndReason, "the recording could not be written") {
		t.Fatalf("while the store is down: seal pending %v, session %+v", meta.SealPending, s)
	}
	gw.Start()
	waitFor(t, "the recovery pass to seal the recording once the store is back", func() bool {
		m, err := w.app.Recs.Meta(context.Background(), recID)
		return err == nil && !m.SealPending
	})
	meta, _ = w.app.Recs.Meta(context.Background(), recID)
	if meta.Complete || !strings.Contains(meta.Reason, "sealed as incomplete once its store was back") {
		t.Fatalf("re-sealed recording %+v", meta)
	}
	bin := gatehouseBinary(t)
	out := filepath.Join(w.dir, "resealed.cast")
	if msg := w.cli(t, bin, "recording", "export", recID, "--out", out); !strings.Contains(msg, "INCOMPLETE") {
		t.Fatalf("export: %s", msg)
	}
	if cast, _ := os.ReadFile(out); !strings.Contains(string(cast), "tick-1") {
		t.Fatalf("the re-sealed recording lost what was written before the outage:\n%s", cast)
	}
}
