package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestMigrateSQLiteToPostgres copies a used SQLite install into a new
// PostgreSQL database with `gatehouse migrate`: the command reports matching
// row counts and a verified audit log; the install configured on the copy
// lists the session's recording, replays it, and `audit verify` passes; a
// second migrate into the now non-empty database is refused with the reason.
func TestMigrateSQLiteToPostgres(t *testing.T) {
	sqliteOnly(t)
	bin := gatehouseBinary(t)
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	if r := alice.direct("root", "db-1", "echo before-migrate"); r.code != 0 {
		t.Fatalf("session: %s", r)
	}
	sess := lastSession(t, w)
	url := testenv.SharedPostgres(t).NewDatabase(t)
	out := w.cli(t, bin, "migrate", "--from", "sqlite:"+filepath.Join(w.dir, "data", "gatehouse.db"), "--to", url)
	if !strings.Contains(out, "row counts match") || !strings.Contains(out, "audit log verifies on the target") {
		t.Fatalf("migrate: %s", out)
	}

	orig, _ := os.ReadFile(w.configFile)
	moved := &world{dir: w.dir, configFile: filepath.Join(t.TempDir(), "gatehouse.yaml")}
	os.WriteFile(moved.configFile, []byte("database:\n  url: \""+url+"\"\n"+string(orig)), 0o600)
	if out := moved.cli(t, bin, "recording", "list"); !strings.Contains(out, sess.RecordingID) {
		t.Fatalf("recording list on PostgreSQL lacks %s:\n%s", sess.RecordingID, out)
	}
	cast := filepath.Join(t.TempDir(), "s.cast")
	moved.cli(t, bin, "recording", "export", sess.RecordingID, "--out", cast)
	if b, _ := os.ReadFile(cast); !strings.Contains(string(b), "before-migrate") {
		t.Fatalf("recording read through PostgreSQL: %q", b)
	}
	if out := moved.cli(t, bin, "audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("audit verify on PostgreSQL: %s", out)
	}

	again, err := exec.Command(bin, "migrate", "--from", "sqlite:"+filepath.Join(w.dir, "data", "gatehouse.db"), "--to", url,
		"--config", w.configFile).CombinedOutput()
	if err == nil || !strings.Contains(string(again), "the target database is not empty") {
		t.Fatalf("migrate into a used database: %v\n%s", err, again)
	}
}
