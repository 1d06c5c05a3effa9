package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// These tests play the attacker who can write gatehouse.db but does not hold
// the master key, against the real SQLite file and the gatehouse CLI.

// recomputeWithoutKey rewrites the stored chain and Merkle tree from the
// events as they now are, as anyone with the file and the published format
// can: every hash is consistent again, nothing is signed.
func recomputeWithoutKey(t *testing.T, c *auditCLI) {
	t.Helper()
	env, err := openEnv(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	var evs []audit.StoredEvent
	err = audit.QueryEvents(context.Background(), env.db.DB, audit.Filter{}, func(ev audit.StoredEvent) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := env.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	tx.Exec(`DELETE FROM audit_tree`)
	prev := make([]byte, 32)
	var tree memHashes
	for i, ev := range evs {
		canon, err := audit.Canonical(&ev.Event)
		if err != nil {
			t.Fatal(err)
		}
		h := audit.ChainHash(prev, canon)
		if _, err := tx.Exec(`UPDATE audit_events SET prev_hash = ?, hash = ? WHERE id = ?`, prev, h, ev.ID); err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashesForRecordHash(int64(i), tlog.RecordHash(h), &tree)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range hs {
			if _, err := tx.Exec(`INSERT INTO audit_tree(idx, hash) VALUES (?, ?)`, len(tree), x[:]); err != nil {
				t.Fatal(err)
			}
			tree = append(tree, x)
		}
		prev = h
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

type memHashes []tlog.Hash

func (m *memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = (*m)[x]
	}
	return out, nil
}

func TestAuditCLIAttackKeylessRewrite(t *testing.T) {
	tests := []struct {
		name, sql string
		args      []string
		want      string
	}{
		{"rewrite an event, recompute chain and tree, drop checkpoints",
			`UPDATE audit_events SET user_name = 'mallory' WHERE id = 3; DELETE FROM audit_checkpoints`, []string{"--skip-checkpoint-file"},
			"FAILED: events 1..5 do not match the signed head (rewritten without the signing key, hashes recomputed)\n"},
		{"the same, checked against the off-box file by default",
			`UPDATE audit_events SET user_name = 'mallory' WHERE id = 3; DELETE FROM audit_checkpoints`, nil,
			"FAILED: events 1..5 no longer match the checkpoint signed at"},
		{"the same, head deleted too",
			`UPDATE audit_events SET user_name = 'mallory' WHERE id = 3; DELETE FROM audit_checkpoints; DELETE FROM audit_head`, []string{"--skip-checkpoint-file"},
			"FAILED: the signed head is missing (deleted)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAuditCLI(t)
			c.sql(t, tt.sql)
			recomputeWithoutKey(t, c)
			code, out := c.run(t, append([]string{"verify"}, tt.args...)...)
			if code != 1 || !strings.HasPrefix(out, tt.want) {
				t.Fatalf("exit %d: %s\nwant prefix %q", code, out, tt.want)
			}
		})
	}
}

func TestAuditCLIAttackForgedCheckpointAndTruncation(t *testing.T) {
	tests := []struct{ name, sql, want string }{
		{"checkpoint signed with another key",
			// A real checkpoint note from another gatehouse (another key).
			"", "FAILED: checkpoint 2 of 2 in the database does not verify: audit: checkpoint signature: not signed by a known audit key"},
		{"last events deleted", `DELETE FROM audit_events WHERE id > 3`,
			"FAILED at event 4: log truncated: the checkpoint signed at"},
		{"all checkpoints deleted", `DELETE FROM audit_checkpoints`,
			"FAILED: the signed head records 1 checkpoints; missing from the database (deleted): 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAuditCLI(t)
			sqlText := tt.sql
			if sqlText == "" {
				other := newAuditCLI(t)
				note := firstCheckpoint(t, other)
				c.sqlArgs(t, `INSERT INTO audit_checkpoints(tree_size, root_hash, time, note) VALUES (5, x'00', 0, ?)`, note)
			} else {
				c.sql(t, sqlText)
			}
			code, out := c.run(t, "verify", "--skip-checkpoint-file")
			if code != 1 || !strings.HasPrefix(out, tt.want) {
				t.Fatalf("exit %d: %s\nwant prefix %q", code, out, tt.want)
			}
		})
	}
}

func firstCheckpoint(t *testing.T, c *auditCLI) string {
	t.Helper()
	env, err := openEnv(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	var note string
	if err := env.db.QueryRow(`SELECT note FROM audit_checkpoints ORDER BY id LIMIT 1`).Scan(&note); err != nil {
		t.Fatal(err)
	}
	return note
}

func (c *auditCLI) sqlArgs(t *testing.T, stmt string, args ...any) {
	t.Helper()
	env, err := openEnv(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if _, err := env.db.Exec(stmt, args...); err != nil {
		t.Fatal(err)
	}
}

func TestAuditCLIVerifyUntouchedSaysWhatWasChecked(t *testing.T) {
	c := newAuditCLI(t)
	_, key := c.run(t, "public-key", "--all")
	id := strings.Fields(key)[0]
	code, out := c.run(t, "verify")
	want := fmt.Sprintf("OK: 5 events (ids 1..5), hash chain and Merkle tree intact; signed head covers all 5 events; "+
		"2 signed checkpoints verified (1 in the database, 1 from %s) with keys %s (active); newest checkpoint covers all events\n", c.cpFile, id)
	if code != 0 || out != want {
		t.Fatalf("exit %d:\n%s\nwant:\n%s", code, out, want)
	}
}

// fileState is what a read-only command must leave as it was.
type fileState struct {
	db, cp [32]byte
	rows   string
}

func snapshot(t *testing.T, c *auditCLI) fileState {
	t.Helper()
	dbPath := filepath.Join(c.dir, "data", "gatehouse.db")
	if _, err := os.Stat(dbPath + "-wal"); err == nil {
		if fi, _ := os.Stat(dbPath + "-wal"); fi.Size() > 0 {
			t.Fatalf("WAL not checkpointed (%d bytes): the snapshot would not be comparable", fi.Size())
		}
	}
	b, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := os.ReadFile(c.cpFile)
	s := fileState{db: sha256.Sum256(b), cp: sha256.Sum256(cp)}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range []string{"audit_events", "audit_checkpoints", "audit_head", "audit_tree", "secrets"} {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		s.rows += fmt.Sprintf("%s=%d ", table, n)
	}
	return s
}

func TestAuditCLIReadOnlyCommandsWriteNothing(t *testing.T) {
	c := newAuditCLI(t)
	before := snapshot(t, c)
	for _, args := range [][]string{{"public-key"}, {"public-key", "--all"}, {"tail", "--n", "3"}, {"verify"}, {"verify", "--skip-checkpoint-file"}} {
		if code, out := c.run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, out)
		}
		if after := snapshot(t, c); after != before {
			t.Fatalf("%v changed the database or the checkpoint file:\nbefore %+v\nafter  %+v", args, before, after)
		}
	}
	// Verify of a tampered log writes nothing either (no checkpoint over it).
	c.sql(t, `UPDATE audit_events SET reason = 'x' WHERE id = 2`)
	before = snapshot(t, c)
	if code, _ := c.run(t, "verify"); code != 1 {
		t.Fatal("tampered log verified")
	}
	if after := snapshot(t, c); after != before {
		t.Fatalf("verify of a tampered log wrote:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestAuditCLICheckpointFileIs0600(t *testing.T) {
	c := newAuditCLI(t)
	fi, err := os.Stat(c.cpFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", c.cpFile, fi.Mode().Perm())
	}
}

func TestAuditCLIRotateKey(t *testing.T) {
	c := newAuditCLI(t)
	_, before := c.run(t, "public-key")
	code, out := c.run(t, "rotate-key")
	if code != 0 || !strings.Contains(out, "audit key rotated: ") {
		t.Fatalf("rotate-key: exit %d: %s", code, out)
	}
	_, all := c.run(t, "public-key", "--all")
	lines := strings.Split(strings.TrimSpace(all), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " active ") || !strings.Contains(lines[1], " retired ") ||
		!strings.HasSuffix(lines[1], strings.TrimSpace(before)) {
		t.Fatalf("keys after rotation:\n%s", all)
	}
	code, out = c.run(t, "verify")
	if code != 0 || !strings.Contains(out, "with keys "+strings.Fields(lines[0])[0]+" (active), "+strings.Fields(lines[1])[0]+" (retired ") {
		t.Fatalf("verify after rotation: exit %d: %s", code, out)
	}
}

func TestAuditCLIPruneByRetention(t *testing.T) {
	old := time.Now().Add(-800 * 24 * time.Hour)
	// A log whose first events are over two years old.
	c := newAuditCLIWith(t, "retention:\n  audit: 400d\n", func(l *audit.Log) {
		for i := 0; i < 4; i++ {
			if err := l.Append(context.Background(), audit.Event{Type: audit.EventLogin, User: "old", Time: old.Add(time.Duration(i) * time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := l.Append(context.Background(), audit.Event{Type: audit.EventLogin, User: "recent"}); err != nil {
				t.Fatal(err)
			}
		}
	})
	code, out := c.run(t, "prune")
	if code != 0 || out != "audit: pruned events 1..4 (4 events)\n" {
		t.Fatalf("prune: exit %d: %q", code, out)
	}
	code, out = c.run(t, "verify")
	if code != 0 || !strings.HasPrefix(out, "OK: 3 events (ids 5..7), hash chain and Merkle tree intact; events 1..4 pruned by retention") {
		t.Fatalf("verify after prune: exit %d: %s", code, out)
	}
	if code, out = c.run(t, "tail", "--n", "1"); !strings.Contains(out, "audit.prune") || !bytes.Contains([]byte(out), []byte(`"last_id":4`)) {
		t.Fatalf("tail after prune: %d %s", code, out)
	}
}
