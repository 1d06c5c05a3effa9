package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBackupOnlineAndRestore backs up a running gateway with the CLI, restores
// it into an empty data directory of another configuration that has only the
// master key, and checks what an operator would: the sessions are listed, a
// recording exports, and the audit chain verifies. A tampered copy and a
// restore over a live install are refused with the reason. On PostgreSQL
// the backup is refused with a pointer to pg_dump, writing nothing.
func TestBackupOnlineAndRestore(t *testing.T) {
	bin := gatehouseBinary(t)
	w := newWorld(t, "")
	if onPostgres() {
		file := filepath.Join(t.TempDir(), "gatehouse.backup")
		out, err := exec.Command(bin, "backup", "--out", file, "--config", w.configFile).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "back up the database with pg_dump") {
			t.Fatalf("backup of a PostgreSQL install: %v\n%s", err, out)
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Fatalf("a refused backup wrote %s: %v", file, err)
		}
		return
	}
	alice := w.newUser("alice", time.Hour)
	if r := alice.direct("root", "db-1", "echo before-backup"); r.code != 0 {
		t.Fatalf("session: %s", r)
	}
	sess := lastSession(t, w)

	file := filepath.Join(t.TempDir(), "gatehouse.backup")
	if out := w.cli(t, bin, "backup", "--out", file); !strings.Contains(out, "wrote "+file) {
		t.Fatalf("backup: %s", out)
	}

	// Another install: its own data dir, the same master key file.
	orig, _ := os.ReadFile(w.configFile)
	newDir := t.TempDir()
	cfg := strings.Replace(string(orig), "data_dir: "+w.dir+"/data",
		"data_dir: "+newDir+"/data\nmaster_key_file: "+w.dir+"/data/master.key", 1)
	restored := &world{dir: newDir, configFile: filepath.Join(newDir, "gatehouse.yaml")}
	os.WriteFile(restored.configFile, []byte(cfg), 0o600)

	if out := restored.cli(t, bin, "restore", file); !strings.Contains(out, "restored the backup of ") {
		t.Fatalf("restore: %s", out)
	}
	if out := restored.cli(t, bin, "recording", "list"); !strings.Contains(out, sess.RecordingID) {
		t.Fatalf("recording list after restore lacks %s:\n%s", sess.RecordingID, out)
	}
	cast := filepath.Join(t.TempDir(), "s.cast")
	restored.cli(t, bin, "recording", "export", sess.RecordingID, "--out", cast)
	if b, _ := os.ReadFile(cast); !strings.Contains(string(b), "before-backup") {
		t.Fatalf("restored recording: %q", b)
	}
	restored.cli(t, bin, "audit", "verify")

	// A restore over an install that is there already is refused.
	if out, err := exec.Command(bin, "restore", file, "--config", restored.configFile).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "the data directory already holds a database") {
		t.Fatalf("restore over an install: %v\n%s", err, out)
	}

	// One flipped byte: refused before anything is decrypted or written.
	raw, _ := os.ReadFile(file)
	raw[len(raw)/2] ^= 0x40
	bad := filepath.Join(t.TempDir(), "tampered.backup")
	os.WriteFile(bad, raw, 0o600)
	third := t.TempDir()
	cfg3 := strings.Replace(string(orig), "data_dir: "+w.dir+"/data",
		"data_dir: "+third+"/data\nmaster_key_file: "+w.dir+"/data/master.key", 1)
	os.WriteFile(filepath.Join(third, "gatehouse.yaml"), []byte(cfg3), 0o600)
	out, err := exec.Command(bin, "restore", bad, "--config", filepath.Join(third, "gatehouse.yaml")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "the signature does not verify with this gateway's master key") {
		t.Fatalf("tampered restore: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(third, "data", "gatehouse.db")); err == nil {
		t.Fatal("a tampered backup left a database behind")
	}
}
