package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The attacker in these tests holds what someone with write access to the
// SQLite file but not the master key holds: every row, SQL, and the code to
// recompute the SHA-256 chain and the Merkle tree (appendEvents without
// keys). They cannot read the sealed audit key.

// interval is the checkpoint interval the log in these tests runs with.
const interval = 5 * time.Minute

// history appends 20 events a minute apart with a checkpoint every 5
// minutes, as the running gateway's ticker would (fake clock), and keeps the
// checkpoint file the gateway ships off the box.
func history(t *testing.T) (*auditEnv, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "offbox", "checkpoints")
	os.MkdirAll(filepath.Dir(file), 0o700)
	// A ticker interval far beyond the test: the fake clock's checkpoints
	// below stand in for it; verify is told the 5m interval.
	e := newAuditEnvOpts(t, Options{CheckpointFile: file, CheckpointInterval: 1000 * time.Hour})
	e.verifyInterval = interval
	for i := 1; i <= 20; i++ {
		e.now = e.now.Add(time.Minute)
		if err := e.log.Append(context.Background(), Event{Type: EventCommand, User: "alice", Target: "db-1", Login: "root",
			Details: map[string]any{"command": fmt.Sprintf("ls %d", i)}}); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if _, err := e.log.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Two events after the newest checkpoint, inside the interval.
	e.append(t, 2)
	return e, file
}

// verifyFull runs verify as `gatehouse audit verify` does: the keys, the
// configured interval and the off-box file.
func (e *auditEnv) verifyFull(t *testing.T) VerifyReport {
	t.Helper()
	b, _ := os.ReadFile(e.log.opts.CheckpointFile)
	opts := VerifyOptions{Keys: e.log.Keys(), Interval: e.log.opts.CheckpointInterval, RequireHead: true}
	if e.verifyInterval != 0 {
		opts.Interval = e.verifyInterval
	}
	if b != nil {
		opts.Extra, opts.ExtraName = b, e.log.opts.CheckpointFile
	}
	rep, err := Verify(context.Background(), e.db.DB, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// rewriteWithoutKey rebuilds the chain and tree from the stored events with
// change applied, recomputing every hash, and runs drop first.
func rewriteWithoutKey(t *testing.T, e *auditEnv, change func(*Event), drop string) {
	t.Helper()
	evs, err := e.log.Query(context.Background(), Filter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`DELETE FROM audit_events; DELETE FROM audit_tree; ` + drop); err != nil {
		t.Fatal(err)
	}
	var batch []*Event
	for i := range evs {
		ev := evs[i].Event
		change(&ev)
		batch = append(batch, &ev)
	}
	if _, _, err := appendEvents(context.Background(), e.db.DB, batch, nil, e.now); err != nil {
		t.Fatal(err)
	}
}

func mustExec(t *testing.T, e *auditEnv, q string, args ...any) {
	t.Helper()
	if _, err := e.db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func TestAuditAttackUntouchedVerifiesAndSaysWhat(t *testing.T) {
	e, file := history(t)
	rep := e.verifyFull(t)
	want := "OK: 22 events (ids 1..22), hash chain and Merkle tree intact; signed head covers all 22 events; " +
		"8 signed checkpoints verified (4 in the database, 4 from " + file + ") with keys " + e.log.Keys()[0].ID +
		" (active); newest checkpoint covers 20 events, the 2 newer ones are covered by the signed head and within the 5m0s checkpoint interval"
	if !rep.OK || rep.String() != want {
		t.Fatalf("report:\n%s\nwant:\n%s", rep, want)
	}
}

func TestAuditAttackRewriteWithoutKey(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Event)
		drop   string
		want   string
	}{
		{"rewrite event 7, recompute chain and tree, drop checkpoints",
			func(ev *Event) {
				if ev.ID == 7 {
					ev.Login = "nobody"
				}
			}, `DELETE FROM audit_checkpoints`,
			"FAILED: events 1..10 no longer match the checkpoint signed at 2026-11-22T10:10:00Z (history rewritten; checkpoint 2 of 4 in "},
		{"rewrite event 21 (after the newest checkpoint), recompute",
			func(ev *Event) {
				if ev.ID == 21 {
					ev.User = "mallory"
				}
			}, ``,
			"FAILED: events 21..22 do not match the signed head (rewritten without the signing key, hashes recomputed)"},
		{"rewrite event 7, recompute, drop checkpoints and the head",
			func(ev *Event) {
				if ev.ID == 7 {
					ev.Login = "nobody"
				}
			}, `DELETE FROM audit_checkpoints; DELETE FROM audit_head`,
			"FAILED: events 1..10 no longer match the checkpoint signed at 2026-11-22T10:10:00Z (history rewritten; checkpoint 2 of 4 in "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := history(t)
			rewriteWithoutKey(t, e, tt.change, tt.drop)
			rep := e.verifyFull(t)
			if rep.OK || !strings.HasPrefix(rep.String(), tt.want) {
				t.Fatalf("report = %s\nwant prefix %q", rep, tt.want)
			}
		})
	}
}

// Without the off-box file the database alone still catches the rewrite.
func TestAuditAttackRewriteCaughtWithoutOffBoxCopy(t *testing.T) {
	tests := []struct {
		name, drop, want string
	}{
		{"checkpoints dropped", `DELETE FROM audit_checkpoints`,
			"FAILED: events 1..22 do not match the signed head (rewritten without the signing key, hashes recomputed)"},
		{"checkpoints and head dropped", `DELETE FROM audit_checkpoints; DELETE FROM audit_head`,
			"FAILED: the signed head is missing (deleted)"},
		{"checkpoints kept", ``,
			"FAILED: events 1..10 no longer match the checkpoint signed at 2026-11-22T10:10:00Z (history rewritten; checkpoint 2 of 4 in the database)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, file := history(t)
			os.Remove(file)
			rewriteWithoutKey(t, e, func(ev *Event) {
				if ev.ID == 7 {
					ev.Login = "nobody"
				}
			}, tt.drop)
			rep := e.verifyFull(t)
			if rep.OK || !strings.HasPrefix(rep.String(), tt.want) {
				t.Fatalf("report = %s\nwant prefix %q", rep, tt.want)
			}
		})
	}
}

func TestAuditAttackForgedSignatures(t *testing.T) {
	e, file := history(t)
	os.Remove(file)
	rewriteWithoutKey(t, e, func(ev *Event) {
		if ev.ID == 7 {
			ev.Login = "nobody"
		}
	}, `DELETE FROM audit_checkpoints`)
	// The attacker signs a checkpoint and a head over the rewritten tree
	// with a key of their own, named like the real one.
	skey, _, err := note.GenerateKey(rand.Reader, KeyName)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	root := treeRoot(t, e, 22)
	forgedID := fmt.Sprintf("%08x", signer.KeyHash())
	cp, _ := note.Sign(&note.Note{Text: checkpointText(Checkpoint{Size: 22, Root: root, Time: e.now.Truncate(time.Second), Seq: 1, KeyID: forgedID})}, signer)
	head, _ := note.Sign(&note.Note{Text: headText(Head{Size: 22, Root: root, Time: e.now, Checkpoints: 1, KeyID: forgedID})}, signer)
	mustExec(t, e, `INSERT INTO audit_checkpoints(tree_size, root_hash, time, note) VALUES (22, ?, 0, ?)`, root[:], string(cp))
	mustExec(t, e, `UPDATE audit_head SET tree_size = 22, checkpoints = 1, note = ?`, string(head))
	rep := e.verifyFull(t)
	want := "FAILED: checkpoint 1 of 1 in the database does not verify: audit: checkpoint signature: not signed by a known audit key (signed by gatehouse-audit+" + forgedID + ")"
	if rep.OK || rep.String() != want {
		t.Fatalf("report = %s\nwant      %s", rep, want)
	}
	// Only the head forged: caught as well.
	mustExec(t, e, `DELETE FROM audit_checkpoints`)
	rep = e.verifyFull(t)
	if want := "FAILED: the signed head does not verify (forged?): audit: signed head: not signed by a known audit key"; rep.OK || !strings.HasPrefix(rep.String(), want) {
		t.Fatalf("report = %s\nwant prefix %s", rep, want)
	}
}

// treeRoot computes the root of the stored tree as the attacker can.
func treeRoot(t *testing.T, e *auditEnv, size int64) tlog.Hash {
	t.Helper()
	tx, err := e.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	root, err := tlog.TreeHash(size, &treeReader{ctx: context.Background(), tx: tx})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestAuditAttackTruncate(t *testing.T) {
	tests := []struct {
		name, sql string
		offBox    bool
		want      string
	}{
		{"last events deleted", `DELETE FROM audit_events WHERE id > 18`, false,
			"FAILED at event 19: log truncated: the checkpoint signed at 2026-11-22T10:20:00Z covers 20 events, only 18 remain"},
		{"last events and newer checkpoints deleted", `DELETE FROM audit_events WHERE id > 15; DELETE FROM audit_checkpoints WHERE tree_size > 15`, false,
			"FAILED at event 16: log truncated: the signed head covers 22 events, only 15 remain"},
		{"truncated to a checkpoint, head and newer checkpoints deleted, off-box copy kept",
			`DELETE FROM audit_events WHERE id > 15; DELETE FROM audit_checkpoints WHERE tree_size > 15; DELETE FROM audit_head`, true,
			"FAILED at event 16: log truncated: the checkpoint signed at 2026-11-22T10:20:00Z covers 20 events, only 15 remain"},
		{"truncated to a checkpoint, head and newer checkpoints deleted, no off-box copy",
			`DELETE FROM audit_events WHERE id > 15; DELETE FROM audit_checkpoints WHERE tree_size > 15; DELETE FROM audit_head`, false,
			"FAILED: the signed head is missing (deleted)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, file := history(t)
			if !tt.offBox {
				os.Remove(file)
			}
			mustExec(t, e, tt.sql)
			rep := e.verifyFull(t)
			if rep.OK || !strings.HasPrefix(rep.String(), tt.want) {
				t.Fatalf("report = %s\nwant prefix %q", rep, tt.want)
			}
		})
	}
}

func TestAuditAttackDeleteCheckpoints(t *testing.T) {
	for _, tt := range []struct{ name, sql, want string }{
		{"all", `DELETE FROM audit_checkpoints`, "FAILED: the signed head records 4 checkpoints; missing from the database (deleted): 1, 2, 3, 4"},
		{"one, replaced by a copy of another", `DELETE FROM audit_checkpoints WHERE id = 2; INSERT INTO audit_checkpoints(tree_size, root_hash, time, note) SELECT tree_size, root_hash, time, note FROM audit_checkpoints WHERE id = 1`,
			"FAILED: the signed head records 4 checkpoints; missing from the database (deleted): 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, file := history(t)
			os.Remove(file)
			mustExec(t, e, tt.sql)
			if rep := e.verifyFull(t); rep.OK || rep.String() != tt.want {
				t.Fatalf("report = %s\nwant      %s", rep, tt.want)
			}
		})
	}
}

// A log whose checkpoints stopped (a writer with checkpoints disabled, or a
// gateway that never checkpointed) fails the interval check.
func TestAuditVerifyStaleCheckpoints(t *testing.T) {
	e := newAuditEnv(t)
	e.append(t, 1)
	if _, err := e.log.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		e.now = e.now.Add(time.Minute)
		e.append(t, 1)
	}
	rep, err := Verify(context.Background(), e.db.DB, VerifyOptions{Keys: e.log.Keys(), Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	want := "FAILED at event 2: events 2..11 are not covered by any signed checkpoint, yet the oldest of them is 9m9s older than the newest event (checkpoints are written every 5m0s): checkpoints are missing"
	if rep.OK || rep.String() != want {
		t.Fatalf("report = %s\nwant      %s", rep, want)
	}
	if _, err := e.log.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rep, _ := Verify(context.Background(), e.db.DB, VerifyOptions{Keys: e.log.Keys(), Interval: interval}); !rep.OK {
		t.Fatalf("after a checkpoint: %s", rep)
	}
}

// The writer never signs over a rewrite: appends compute the new root from
// the frontier it holds in memory (so the rewrite stays visible), and the
// next checkpoint, or a writer opened afresh, refuses.
func TestAuditWriterRefusesToSignOverRewrite(t *testing.T) {
	e, _ := history(t)
	rewriteWithoutKey(t, e, func(ev *Event) {
		if ev.ID == 21 {
			ev.User = "mallory"
		}
	}, ``)
	if err := e.log.Append(context.Background(), Event{Type: EventLogin, User: "bob"}); err != nil {
		t.Fatal(err)
	}
	rep := e.verifyFull(t)
	if want := "FAILED: events 21..23 do not match the signed head"; rep.OK || !strings.HasPrefix(rep.String(), want) {
		t.Fatalf("after an append over the rewrite: %s\nwant prefix %s", rep, want)
	}
	_, err := e.log.Checkpoint(context.Background())
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "the stored events no longer match the signed head") {
		t.Fatalf("checkpoint over a rewrite: %v", err)
	}
	if _, err := Open(e.db, e.sec, Options{CheckpointInterval: -1}); !errors.Is(err, ErrTampered) {
		t.Fatalf("open over a rewrite: %v", err)
	}
}

// Deleting the sealed keys (and the head) does not make a writer create a
// new key over the existing events.
func TestAuditDeletedKeysNotRecreated(t *testing.T) {
	e, _ := history(t)
	mustExec(t, e, `DELETE FROM secrets WHERE name LIKE 'audit/%'`)
	_, err := Open(e.db, e.sec, Options{CheckpointInterval: -1})
	if !errors.Is(err, ErrNoKey) {
		t.Fatalf("open without keys: %v", err)
	}
	rep, err := Verify(context.Background(), e.db.DB, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "FAILED: the sealed audit keys are missing from the database but the log holds events: they were deleted (nothing can be verified)"; rep.String() != want {
		t.Fatalf("report = %s", rep)
	}
}

func TestCheckpointFileCreated0600(t *testing.T) {
	_, file := history(t)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("checkpoint file mode %v, want 0600", fi.Mode().Perm())
	}
}

// A writer opened on a rewritten log refuses at once, even when the newest
// checkpoint covers every event (nothing to catch up).
func TestAuditOpenRefusesRewrittenLog(t *testing.T) {
	e, _ := history(t)
	if _, err := e.log.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	rewriteWithoutKey(t, e, func(ev *Event) {
		if ev.ID == 3 {
			ev.Reason = "nothing happened"
		}
	}, `DELETE FROM audit_checkpoints`)
	_, err := Open(e.db, e.sec, Options{CheckpointInterval: -1})
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "the stored events no longer match the signed head") {
		t.Fatalf("open over a rewrite: %v", err)
	}
}

// Emptying the whole log (events, tree, checkpoints, head) but leaving the
// keys: verify fails and no writer starts a new chain over it.
func TestAuditAttackEmptiedLog(t *testing.T) {
	e, file := history(t)
	os.Remove(file)
	mustExec(t, e, `DELETE FROM audit_events; DELETE FROM audit_tree; DELETE FROM audit_checkpoints; DELETE FROM audit_head`)
	opts, err := VerifyOptionsFor(context.Background(), e.sec)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(context.Background(), e.db.DB, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := "FAILED: the signed head is missing (deleted): the log is empty although its signing key exists (emptied?)"; rep.String() != want {
		t.Fatalf("report = %s\nwant      %s", rep, want)
	}
	if _, err := Open(e.db, e.sec, Options{CheckpointInterval: -1}); !errors.Is(err, ErrTampered) {
		t.Fatalf("open over an emptied log: %v", err)
	}
}

// A new log has a signed head from the start, so an empty log verifies.
func TestAuditFreshLogHasGenesisHead(t *testing.T) {
	e := newAuditEnv(t)
	opts, err := VerifyOptionsFor(context.Background(), e.sec)
	if err != nil || !opts.RequireHead || len(opts.Keys) != 1 {
		t.Fatalf("options %+v, %v", opts, err)
	}
	rep, err := Verify(context.Background(), e.db.DB, opts)
	if err != nil || !rep.OK || rep.Head == nil || rep.Head.Size != 0 || rep.String() != "OK: the audit log is empty; its signed head (key "+opts.Keys[0].ID+") says so" {
		t.Fatalf("fresh log: %s (%v)", rep, err)
	}
}
