package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// auditCLI is a data directory with a few audit events and a config file
// pointing at it; checkpoints are also copied to cpFile ("off the box").
type auditCLI struct {
	cfg, cpFile, dir string
}

func newAuditCLI(t *testing.T) *auditCLI {
	t.Helper()
	return newAuditCLIWith(t, "", func(l *audit.Log) {
		for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
			if err := l.Append(context.Background(), audit.Event{Type: audit.EventLogin, User: u, Target: "db-1"}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// newAuditCLIWith writes the config (plus extra YAML), opens the log, runs
// fill and closes it (which writes a checkpoint to the database and cpFile).
func newAuditCLIWith(t *testing.T, extra string, fill func(*audit.Log)) *auditCLI {
	t.Helper()
	c := &auditCLI{dir: t.TempDir()}
	c.cfg = filepath.Join(c.dir, "gatehouse.yaml")
	c.cpFile = filepath.Join(c.dir, "offbox", "checkpoints.txt")
	os.MkdirAll(filepath.Dir(c.cpFile), 0o700)
	conf := "data_dir: " + filepath.Join(c.dir, "data") + "\naudit:\n  checkpoint_file: " + c.cpFile + "\n" + extra
	if err := os.WriteFile(c.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env, l, err := openAudit(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	fill(l)
	l.Close()
	env.Close()
	return c
}

func (c *auditCLI) run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"audit"}, append(args, "--config", c.cfg)...), &out, &errb)
	return code, out.String() + errb.String()
}

func (c *auditCLI) sql(t *testing.T, stmt string) {
	t.Helper()
	env, err := openEnv(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if _, err := env.db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

func TestAuditCLIVerify(t *testing.T) {
	c := newAuditCLI(t)
	if code, out := c.run(t, "verify", "--checkpoint", c.cpFile); code != 0 || !strings.HasPrefix(out, "OK: 5 events") {
		t.Fatalf("clean verify: exit %d: %s", code, out)
	}
	c.sql(t, `UPDATE audit_events SET user_name = 'mallory' WHERE id = 3`)
	code, out := c.run(t, "verify")
	if code != 1 || !strings.HasPrefix(out, "FAILED at event 3:") || strings.Count(out, "\n") != 1 {
		t.Fatalf("edited row: exit %d: %q", code, out)
	}
}

func TestAuditCLIVerifyTruncatedAgainstOffBoxCheckpoint(t *testing.T) {
	c := newAuditCLI(t)
	// An attacker removes the last events, every local checkpoint and the
	// signed head; the off-box file, read by default, still catches it.
	c.sql(t, `DELETE FROM audit_events WHERE id > 3; DELETE FROM audit_checkpoints; DELETE FROM audit_head`)
	code, out := c.run(t, "verify")
	if want := "FAILED at event 4: log truncated: the checkpoint signed at"; code != 1 || !strings.HasPrefix(out, want) {
		t.Fatalf("truncation: exit %d: %s", code, out)
	}
	// Without the file the missing head still fails it.
	code, out = c.run(t, "verify", "--skip-checkpoint-file")
	if want := "FAILED: the signed head is missing (deleted)"; code != 1 || !strings.HasPrefix(out, want) {
		t.Fatalf("truncation without the file: exit %d: %s", code, out)
	}
}

func TestAuditCLIExportAndVerifyExport(t *testing.T) {
	c := newAuditCLI(t)
	code, key := c.run(t, "public-key")
	key = strings.TrimSpace(key)
	if code != 0 || !strings.HasPrefix(key, audit.KeyName+"+") {
		t.Fatalf("public-key: exit %d: %s", code, key)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	if code, out := c.run(t, "export", "--format", "jsonl", "--user", "bob", "--since", "24h", "--out", dir); code != 0 || !strings.Contains(out, "exported 1 events") {
		t.Fatalf("export: exit %d: %s", code, out)
	}
	var out bytes.Buffer
	if code := run([]string{"audit", "verify-export", dir, "--key", key}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "OK: 1 events") {
		t.Fatalf("verify-export: exit %d: %s", code, out.String())
	}
	tamperBundle(t, dir)
	out.Reset()
	if code := run([]string{"audit", "verify-export", dir, "--key", key}, &out, &out); code != 1 || !strings.HasPrefix(out.String(), "FAILED") {
		t.Fatalf("tampered bundle: exit %d: %s", code, out.String())
	}
}

// tamperBundle rewrites bob as mallory in the bundle's events file.
func tamperBundle(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("events files %v", files)
	}
	b, _ := os.ReadFile(files[0])
	if err := os.WriteFile(files[0], bytes.ReplaceAll(b, []byte(`"bob"`), []byte(`"mallory"`)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuditCLITail(t *testing.T) {
	c := newAuditCLI(t)
	code, out := c.run(t, "tail", "--n", "2")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.Contains(lines[0], "user=dave") || !strings.Contains(lines[1], "user=erin") {
		t.Fatalf("tail: exit %d: %s", code, out)
	}
}

func TestParseWhen(t *testing.T) {
	for _, bad := range []string{"yesterday", "24", "-"} {
		if _, err := parseWhen(bad, time.Time{}); err == nil {
			t.Errorf("parseWhen(%q) accepted", bad)
		}
	}
}
