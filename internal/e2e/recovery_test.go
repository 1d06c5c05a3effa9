package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder"
)

// worldDB opens the world's PostgreSQL database for the test's own reads.
func worldDB(t *testing.T, w *world) *store.DB {
	t.Helper()
	_, q, ok := strings.Cut(w.dbCfg, "url: ")
	if !ok {
		t.Fatalf("no database url in %q", w.dbCfg)
	}
	url, err := strconv.Unquote(strings.TrimSpace(strings.SplitN(q, "\n", 2)[0]))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenURL(context.Background(), url, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// instanceConfigs writes the configuration of two instances on w's
// database: A is w's own file with instance_lease set, B has its own
// data_dir and A's master key.
func instanceConfigs(t *testing.T, w *world, lease string) (a, b string) {
	t.Helper()
	orig, err := os.ReadFile(w.configFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(orig), w.dbCfg, w.dbCfg+"  instance_lease: "+lease+"\n", 1)
	os.WriteFile(w.configFile, []byte(text), 0o600)
	dir := t.TempDir()
	textB := strings.Replace(text, "data_dir: "+w.dir+"/data",
		"data_dir: "+dir+"/data\nmaster_key_file: "+w.dir+"/data/master.key", 1)
	b = filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(b, []byte(textB), 0o600)
	return w.configFile, b
}

// TestInstancesKill9OneOfTwo: two `gatehouse serve` processes on one
// PostgreSQL database record to one versitygw bucket; A is killed with -9
// during 20 live sessions. B accepts a new session at once; B seals every
// one of A's sessions as incomplete (recording playable up to what was
// flushed, an abnormal session.end naming both instances); B's own live
// session is untouched and ends complete; every session.start committed
// before the kill is in the log, and the log verifies.
func TestInstancesKill9OneOfTwo(t *testing.T) {
	severalInstances(t)
	bin := gatehouseBinary(t)
	w, _ := s3World(t)
	alice := w.newUser("alice", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.app.Close(ctx) // hand the database to real processes
	cancel()
	db := worldDB(t, w)
	cfgA, cfgB := instanceConfigs(t, w, "3s")
	procA, portA := serveProcess(t, bin, cfgA)
	_, portB := serveProcess(t, bin, cfgB)

	const n = 20
	outs := make([]*syncBuffer, n)
	for i := range outs {
		outs[i] = &syncBuffer{}
		c := alice.cmd(context.Background(), "ssh", "-p", portA, "root@db-1@127.0.0.1",
			fmt.Sprintf("echo acked-%d; sleep 600", i))
		c.Stdout, c.Stderr = outs[i], io.Discard
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		go c.Wait()
	}
	for i := range outs {
		waitFor(t, fmt.Sprintf("session %d on A", i), func() bool { return strings.Contains(outs[i].String(), fmt.Sprintf("acked-%d\n", i)) })
	}
	type sess struct{ id, rec, instance string }
	var onA []sess
	rows, err := db.Query(`SELECT id, recording_id, instance_id FROM sessions WHERE end_at IS NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s sess
		rows.Scan(&s.id, &s.rec, &s.instance)
		onA = append(onA, s)
	}
	rows.Close()
	if len(onA) != n {
		t.Fatalf("%d open sessions, want %d", len(onA), n)
	}
	for _, s := range onA { // every acknowledged line has reached the store
		deadline := time.Now().Add(60 * time.Second)
		for !castHolds(t, w, bin, s.rec, "acked-") {
			if time.Now().After(deadline) {
				t.Fatalf("recording %s never held its output", s.rec)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// B's own session, live across A's death.
	var bOut syncBuffer
	cb := alice.cmd(context.Background(), "ssh", "-p", portB, "root@db-1@127.0.0.1", "echo b-live; read x; echo b-done-$x")
	bIn, _ := cb.StdinPipe()
	cb.Stdout, cb.Stderr = &bOut, io.Discard
	if err := cb.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cb.Process.Kill() })
	waitFor(t, "B's live session", func() bool { return strings.Contains(bOut.String(), "b-live") })

	killed := time.Now()
	procA.Process.Signal(syscall.SIGKILL)
	procA.Wait()
	r := alice.run("ssh", "-p", portB, "root@db-1@127.0.0.1", "echo b-right-after-the-kill")
	if r.code != 0 || r.stdout != "b-right-after-the-kill\n" {
		t.Fatalf("a new session on B right after A died: %s", r)
	}
	var instB string
	db.QueryRow(`SELECT instance_id FROM sessions ORDER BY start_at DESC LIMIT 1`).Scan(&instB)
	if instB == "" || instB == onA[0].instance {
		t.Fatalf("B's instance %q, A's %q", instB, onA[0].instance)
	}

	deadline := time.Now().Add(120 * time.Second)
	for {
		var open int
		if err := db.QueryRow(`SELECT COUNT(*) FROM recordings WHERE instance_id <> ? AND (ended IS NULL OR seal_pending = 1)`,
			instB).Scan(&open); err != nil {
			t.Fatal(err)
		}
		var openSess int
		db.QueryRow(`SELECT COUNT(*) FROM sessions WHERE end_at IS NULL AND instance_id <> ?`, instB).Scan(&openSess)
		if open == 0 && openSess == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d recordings and %d sessions of A still open", open, openSess)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("recovery: A killed -> its %d sessions and recordings sealed by B in %v (instance_lease 3s)", n,
		time.Since(killed).Round(100*time.Millisecond))

	tail := w.cli(t, bin, "audit", "tail", "-n", "500")
	for i, s := range onA {
		var reason, owner string
		var complete bool
		if err := db.QueryRow(`SELECT end_reason, instance_id, recording_complete FROM sessions WHERE id = ?`, s.id).
			Scan(&reason, &owner, &complete); err != nil {
			t.Fatal(err)
		}
		if reason != "gateway stopped unexpectedly" || owner != instB || complete {
			t.Fatalf("session %s: reason %q owner %q complete %v", s.id, reason, owner, complete)
		}
		out := filepath.Join(w.dir, fmt.Sprintf("a-%d.cast", i))
		msg := w.cli(t, bin, "recording", "export", s.rec, "--out", out)
		if !strings.Contains(msg, "INCOMPLETE: gateway stopped unexpectedly") {
			t.Fatalf("export %s: %s", s.rec, msg)
		}
		if cast, _ := os.ReadFile(out); !strings.Contains(string(cast), "acked-") {
			t.Fatalf("recording %s lost what was acknowledged:\n%s", s.rec, cast)
		}
		var started, ended bool
		for _, line := range strings.Split(tail, "\n") {
			if !strings.Contains(line, s.id) {
				continue
			}
			started = started || strings.Contains(line, "session.start")
			ended = ended || (strings.Contains(line, `"abnormal":true`) && strings.Contains(line, `"sealed_by":"`+instB+`"`) &&
				strings.Contains(line, `"instance":"`+s.instance+`"`))
		}
		if !started || !ended {
			t.Fatalf("session %s: session.start in the log %v, abnormal session.end by B %v", s.id, started, ended)
		}
	}
	io.WriteString(bIn, "ok\n")
	if err := cb.Wait(); err != nil || !strings.Contains(bOut.String(), "b-done-ok") {
		t.Fatalf("B's own session: %v %q", err, bOut.String())
	}
	var bComplete bool
	var bReason string
	waitFor(t, "B's session end row", func() bool {
		return db.QueryRow(`SELECT recording_complete, end_reason FROM sessions WHERE instance_id = ? AND end_reason <> ''
			AND end_reason <> 'gateway stopped unexpectedly' ORDER BY start_at LIMIT 1`, instB).Scan(&bComplete, &bReason) == nil
	})
	if !bComplete || bReason != "exited" {
		t.Fatalf("B's own session: complete %v reason %q", bComplete, bReason)
	}
	if v := w.cli(t, bin, "audit", "verify"); !strings.HasPrefix(v, "OK: ") {
		t.Fatalf("audit verify: %s", v)
	}
}

// TestInstancesRestartLeavesOthersLive: restarting instance B while a
// session runs on instance A does not seal A's session (B's start and its
// recovery passes seal only instances whose lease ran out): the session
// stays open in the database, finishes normally on A with a complete
// recording, and no abnormal end is logged for it.
func TestInstancesRestartLeavesOthersLive(t *testing.T) {
	severalInstances(t)
	w := newWorld(t, "")
	wb := secondInstance(t, w)
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; read x; echo finished-$x")
	in, _ := c.StdinPipe()
	var out syncBuffer
	c.Stdout, c.Stderr = &out, io.Discard
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill() })
	waitFor(t, "session start on A", func() bool { return strings.Contains(out.String(), "started") })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	wb.app.Close(ctx) // restart B
	cancel()
	cfg, err := config.Load(wb.configFile)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := app.Start(cfg, slog.New(slog.NewTextHandler(&testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b2.Close(ctx)
	})
	live, err := w.app.Sessions.List(context.Background(), recorder.SessionFilter{Live: true})
	if err != nil || len(live) != 1 {
		t.Fatalf("B's restart ended A's live session: live %+v %v", live, err)
	}
	s := live[0].Session
	if m, err := w.app.Recs.Meta(context.Background(), s.RecordingID); err != nil || !m.Ended.IsZero() {
		t.Fatalf("B's restart sealed A's live recording: %+v %v", m, err)
	}
	io.WriteString(in, "ok\n")
	if err := c.Wait(); err != nil || !strings.Contains(out.String(), "finished-ok") {
		t.Fatalf("A's session: %v %q", err, out.String())
	}
	s = lastSession(t, w)
	if s.EndReason != "exited" || !s.RecordingComplete {
		t.Fatalf("A's session after B's restart: reason %q complete %v", s.EndReason, s.RecordingComplete)
	}
	tail := w.cli(t, gatehouseBinary(t), "audit", "tail", "-n", "50")
	if strings.Contains(tail, `"abnormal":true`) {
		t.Fatalf("abnormal end logged:\n%s", tail)
	}
}

// TestReadyzPostgresDown: /readyz answers 503 naming the database while
// PostgreSQL is stopped, and 200 again once it is back.
func TestReadyzPostgresDown(t *testing.T) {
	if !onPostgres() {
		t.Skip("stops PostgreSQL; this run uses SQLite (set GATEHOUSE_TEST_DB=postgres)")
	}
	pg := testenv.StartPostgres(t)
	worldPostgres = pg
	w := newWorldWith(t, "", opsConfig)
	worldPostgres = nil
	base := "http://" + w.app.MetricsAddr()
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz with PostgreSQL up: %d %q", code, body)
	}
	pg.Stop(t)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			pg.Start(t)
		}
	})
	var body string
	waitFor(t, "/readyz 503 with PostgreSQL stopped", func() bool {
		var code int
		code, body = httpGet(t, base+"/readyz")
		return code == 503
	})
	if !strings.HasPrefix(body, "not ready\n") || !strings.Contains(body, "database: ") {
		t.Fatalf("/readyz with PostgreSQL stopped: %q", body)
	}
	t.Logf("/readyz with PostgreSQL stopped: %q", body)
	pg.Start(t)
	stopped = false
	waitFor(t, "/readyz 200 with PostgreSQL back", func() bool {
		code, _ := httpGet(t, base+"/readyz")
		return code == 200
	})
}

// TestInstancesLostLeaseEndsSealedSessions: instance A's lease runs out
// while its session is live (expired in the database here, as when A was
// cut off from it for longer than the lease); B claims the session and
// seals it. At its next heartbeat A learns it lost the lease and ends that
// session with a line saying why (fencing), instead of letting it run on
// behind B's seal.
func TestInstancesLostLeaseEndsSealedSessions(t *testing.T) {
	severalInstances(t)
	w := newWorld(t, "")
	instanceConfigs(t, w, "1s") // B: 1 s lease (a pass every 200 ms); A runs with the default
	wb := secondInstance(t, w)
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; sleep 120; echo finished")
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill() })
	waitFor(t, "session start on A", func() bool { return strings.Contains(out.String(), "started") })
	live, err := w.app.Sessions.List(context.Background(), recorder.SessionFilter{Live: true})
	if err != nil || len(live) != 1 {
		t.Fatalf("live %+v %v", live, err)
	}
	id, idA, idB := live[0].ID, w.app.Instance.ID(), wb.app.Instance.ID()
	db := w.app.Env.DB
	// Expire A's lease until B has claimed the session (A's own heartbeat
	// may take a new lease in between).
	waitFor(t, "B to claim A's session", func() bool {
		db.Exec(`UPDATE instances SET lease_until = 0 WHERE id = ?`, idA)
		var owner string
		db.QueryRow(`SELECT instance_id FROM sessions WHERE id = ?`, id).Scan(&owner)
		return owner == idB
	})
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("A's session ran on after B sealed it")
	}
	if err == nil || strings.Contains(out.String(), "finished") ||
		!strings.Contains(errb.String(), "gatehouse: session ended: this gateway lost contact with the database and another instance sealed the session") {
		t.Fatalf("A's session: %v stdout %q stderr %q", err, out.String(), errb.String())
	}
	s, err := w.app.Sessions.Get(context.Background(), id)
	if err != nil || s.End.IsZero() || s.EndReason != "gateway stopped unexpectedly" {
		t.Fatalf("session row %+v %v", s, err)
	}
}
