package e2e

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder"
)

// secondInstance starts another gateway on w's PostgreSQL database: its own
// data_dir (recordings), w's master key, the same configuration otherwise.
// It returns a world whose users connect to the second instance. edits
// change the configuration text further (e.g. another web port).
func secondInstance(t *testing.T, w *world, edits ...func(string) string) *world {
	t.Helper()
	severalInstances(t)
	orig, err := os.ReadFile(w.configFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgText := strings.Replace(string(orig), "data_dir: "+w.dir+"/data",
		"data_dir: "+dir+"/data\nmaster_key_file: "+w.dir+"/data/master.key", 1)
	for _, edit := range edits {
		cfgText = edit(cfgText)
	}
	path := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(path, []byte(cfgText), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := app.Start(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Close(ctx)
	})
	wb := *w
	wb.app, wb.configFile = b, path
	_, wb.port, _ = net.SplitHostPort(b.SSHAddr())
	return &wb
}

// TestInstancesShareLocks: a lock made on instance A (its lock store, as the
// web UI's lock page does) ends alice's live session on instance B, which
// learns of it by polling the shared database, and B then refuses her new
// connections with the lock's reason. Both instances list the session.
func TestInstancesShareLocks(t *testing.T) {
	w := newWorld(t, "")
	wb := secondInstance(t, w)
	alice := wb.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-p", wb.port, "root@db-1@127.0.0.1", "echo started; sleep 60")
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session start on B", func() bool { return strings.Contains(out.String(), "started") })
	live, err := w.app.Sessions.List(context.Background(), recorder.SessionFilter{Live: true})
	if err != nil || len(live) != 1 || live[0].User != "alice" {
		t.Fatalf("instance A's live sessions: %+v %v", live, err)
	}
	locked := time.Now()
	if err := w.app.Locks.Lock(context.Background(), "alice", "laptop stolen", "admin", 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		c.Process.Kill()
		t.Fatal("the session on B kept running after the lock on A")
	}
	t.Logf("lock on A ended the session on B after %v", time.Since(locked).Round(100*time.Millisecond))
	if !strings.Contains(errb.String(), "your access was locked: laptop stolen") {
		t.Fatalf("stderr %q", errb.String())
	}
	r := alice.run("ssh", "-o", "LogLevel=INFO", "-p", wb.port, "root@db-1@127.0.0.1", "id")
	if r.code == 0 || !strings.Contains(r.stderr, "your access is locked (laptop stolen)") {
		t.Fatalf("new connection to B while locked on A: %s", r)
	}
}

// TestInstancesShareTOTPSteps: a TOTP code accepted by instance A is refused
// by instance B (one use per time step across the cluster).
func TestInstancesShareTOTPSteps(t *testing.T) {
	w := newWorld(t, "")
	wb := secondInstance(t, w)
	ctx := context.Background()
	if err := w.app.TOTP.BindUser(ctx, auth.Identity{User: "dave"}); err != nil {
		t.Fatal(err)
	}
	en, err := w.app.TOTP.BeginEnrol(ctx, "dave")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := totp.GenerateCode(en.Secret, time.Now().Add(-30*time.Second))
	if _, err := w.app.TOTP.ConfirmEnrol(ctx, "dave", first); err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(en.Secret, time.Now())
	if err := w.app.TOTP.Verify(ctx, "dave", code); err != nil {
		t.Fatalf("A refused a fresh code: %v", err)
	}
	if err := wb.app.TOTP.Verify(ctx, "dave", code); err == nil {
		t.Fatal("B accepted the code A had just used")
	}
}

// TestPostgresRestartedUnderLoad restarts PostgreSQL (an immediate stop, as
// a crash) while a session runs: the session either finishes or fails with
// a message, never runs on unrecorded; new sessions work again once the
// database is back, and the audit log verifies.
func TestPostgresRestartedUnderLoad(t *testing.T) {
	if !onPostgres() {
		t.Skip("restarts PostgreSQL; this run uses SQLite (set GATEHOUSE_TEST_DB=postgres)")
	}
	pg := testenv.StartPostgres(t)
	worldPostgres = pg
	w := newWorld(t, "")
	worldPostgres = nil
	bin := gatehouseBinary(t)
	alice := w.newUser("alice", time.Hour)
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; sleep 4; echo finished")
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session start", func() bool { return strings.Contains(out.String(), "started") })
	restarted := time.Now()
	pg.Restart(t)
	t.Logf("PostgreSQL stopped and started in %v", time.Since(restarted).Round(100*time.Millisecond))
	err := c.Wait()
	switch {
	case err == nil && strings.Contains(out.String(), "finished"):
		t.Logf("the in-flight session finished")
	case err != nil && strings.Contains(errb.String(), "gatehouse"):
		t.Logf("the in-flight session failed closed: %q", errb.String())
	default:
		t.Fatalf("in-flight session: err %v stdout %q stderr %q", err, out.String(), errb.String())
	}
	var back time.Duration
	waitFor(t, "a new session after the restart", func() bool {
		r := alice.direct("root", "db-1", "echo back")
		back = time.Since(restarted)
		return r.code == 0 && r.stdout == "back\n"
	})
	t.Logf("new sessions worked again %v after the restart began", back.Round(100*time.Millisecond))
	if out := w.cli(t, bin, "audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: %s", out)
	}
}

// TestInstancesShareMaxSessions: max_sessions counts a user's sessions on
// every live instance: with one session open on A, a second one on B is
// refused with the same line as on one instance, and allowed once the
// first has ended.
func TestInstancesShareMaxSessions(t *testing.T) {
	w := newWorld(t, "")
	wb := secondInstance(t, w)
	lina := w.newUser("lina", time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := lina.cmd(ctx, "ssh", "-p", w.port, "root@db-1@127.0.0.1", "echo started; sleep 300")
	var out syncBuffer
	first.Stdout = &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first session, on A", func() bool { return strings.Contains(out.String(), "started") })
	want := "gatehouse: too many sessions: you have 1 open and your roles allow 1 at once (max_sessions); end one first"
	r := lina.run("ssh", "-p", wb.port, "root@db-1@127.0.0.1", "echo second")
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("second session, on B: %s\nwant %q", r, want)
	}
	cancel()
	first.Wait()
	waitFor(t, "a session on B once the first ended", func() bool {
		r := lina.run("ssh", "-p", wb.port, "root@db-1@127.0.0.1", "echo second")
		return r.code == 0 && r.stdout == "second\n"
	})
}
