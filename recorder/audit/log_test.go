package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
)

type auditEnv struct {
	// verifyInterval is the checkpoint interval verifyFull checks against
	// (zero: the log's own).
	verifyInterval time.Duration

	db  *store.DB
	sec *secrets.Store
	log *Log
	now time.Time
}

func newAuditEnv(t testing.TB) *auditEnv {
	t.Helper()
	return newAuditEnvOpts(t, Options{CheckpointInterval: -1})
}

// newAuditEnvOpts opens the log with opts and the env's fake clock.
func newAuditEnvOpts(t testing.TB, opts Options) *auditEnv {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	e := &auditEnv{db: db, sec: secrets.NewStore(db.DB, kr), now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	opts.Now = func() time.Time { return e.now }
	e.log, err = Open(db, e.sec, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close(); db.Close() })
	return e
}

func (e *auditEnv) append(t testing.TB, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		e.now = e.now.Add(time.Second)
		err := e.log.Append(context.Background(), Event{Type: EventCommand, User: "alice", Target: "db-1", Login: "root",
			SessionID: "s1", ClientAddr: "127.0.0.1:5000", Details: map[string]any{"command": fmt.Sprintf("ls %d", i), "source": "exec"}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (e *auditEnv) verify(t *testing.T, extra []byte) VerifyReport {
	t.Helper()
	rep, err := Verify(context.Background(), e.db.DB, VerifyOptions{Keys: e.log.Keys(), Extra: extra, ExtraName: "the off-box copy", Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestAuditConcurrentAppendsFormOneChain(t *testing.T) {
	e := newAuditEnv(t)
	var wg sync.WaitGroup
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := e.log.Append(context.Background(), Event{Type: EventSessionStart, User: fmt.Sprintf("u%d", g)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if _, err := e.log.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := e.verify(t, nil)
	if !rep.OK || rep.Events != 1000 || rep.Checkpoints != 1 {
		t.Fatalf("verify = %+v (%s)", rep, rep)
	}
}

func TestAuditRejectsAmbiguousDetails(t *testing.T) {
	e := newAuditEnv(t)
	err := e.log.Append(context.Background(), Event{Type: EventCommand, Details: map[string]any{"x": 1.5}})
	if !errors.Is(err, ErrBadDetails) {
		t.Fatalf("err = %v", err)
	}
}

func TestAuditTamperDetected(t *testing.T) {
	tests := []struct {
		name     string
		tamper   string // SQL run against the file
		wantBad  int64
		wantText string
	}{
		{"edit", `UPDATE audit_events SET reason = 'nothing to see' WHERE id = 5`, 5, "content does not match its hash"},
		{"edit with rehash", `UPDATE audit_events SET login = 'nobody', hash = x'00' WHERE id = 5`, 5, "content does not match its hash"},
		{"delete", `DELETE FROM audit_events WHERE id = 7`, 7, "event 7 is missing (deleted)"},
		{"delete and renumber", `DELETE FROM audit_events WHERE id = 7; UPDATE audit_events SET id = id - 1 WHERE id > 7`, 7, "content does not match its hash"},
		{"insert", `UPDATE audit_events SET id = -(id + 1) WHERE id >= 4; UPDATE audit_events SET id = -id WHERE id < 0; INSERT INTO audit_events SELECT 4, time, type, 'mallory', user_issuer, user_subject, client_addr, client_version, key_fingerprint, cert_serial, target, login, session_id, reason, details, prev_hash, hash FROM audit_events WHERE id = 3`, 4, "content does not match its hash"},
		{"reorder", `UPDATE audit_events SET id = -1 WHERE id = 3; UPDATE audit_events SET id = 3 WHERE id = 6; UPDATE audit_events SET id = 6 WHERE id = -1`, 3, "content does not match its hash"},
		{"truncate tail", `DELETE FROM audit_events WHERE id > 15; DELETE FROM audit_checkpoints`, 16, "log truncated: the checkpoint signed at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAuditEnv(t)
			e.append(t, 20)
			cp, err := e.log.Checkpoint(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep := e.verify(t, cp.Note); !rep.OK {
				t.Fatalf("clean log does not verify: %s", rep)
			}
			if _, err := e.db.Exec(tt.tamper); err != nil {
				t.Fatal(err)
			}
			rep := e.verify(t, cp.Note) // the checkpoint kept off the box
			if rep.OK {
				t.Fatal("tampering not detected")
			}
			if rep.FirstBad != tt.wantBad || !strings.Contains(rep.Problem, tt.wantText) {
				t.Fatalf("report = %s; want first bad %d containing %q", rep, tt.wantBad, tt.wantText)
			}
		})
	}
}

func TestAuditRewrittenHistoryCaughtByCheckpoint(t *testing.T) {
	e := newAuditEnv(t)
	e.append(t, 10)
	cp, err := e.log.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// An attacker without the signing key rebuilds a consistent chain with
	// one event changed: every hash recomputed, tree and checkpoints wiped.
	evs, err := e.log.Query(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	e.db.Exec(`DELETE FROM audit_events; DELETE FROM audit_tree; DELETE FROM audit_checkpoints`)
	var batch []*Event
	for i := range evs {
		ev := evs[i].Event
		if ev.ID == 4 {
			ev.Login = "nobody"
		}
		batch = append(batch, &ev)
	}
	if _, _, err := appendEvents(context.Background(), e.db.DB, batch, nil, e.now); err != nil {
		t.Fatal(err)
	}
	// The chain is self-consistent, but the signed head is not.
	if rep := e.verify(t, nil); rep.OK || !strings.Contains(rep.Problem, "events 1..10 do not match the signed head") {
		t.Fatalf("rewrite without an external checkpoint: %s", rep)
	}
	rep := e.verify(t, cp.Note)
	if rep.OK || !strings.Contains(rep.Problem, "history rewritten") {
		t.Fatalf("report = %s", rep)
	}
}

func TestAuditExportVerifies(t *testing.T) {
	for _, format := range []string{"csv", "jsonl"} {
		t.Run(format, func(t *testing.T) {
			e := newAuditEnv(t)
			e.append(t, 30)
			e.log.Append(context.Background(), Event{Type: EventSessionStart, User: "bob", Target: "web-1",
				Reason: "quote \" comma , newline \n", Details: map[string]any{"n": 3, "ok": true}})
			dir := filepath.Join(t.TempDir(), "export")
			m, err := e.log.Export(context.Background(), ExportOptions{Format: format, Dir: dir, Filter: Filter{User: "alice"}, Actor: "auditor"})
			if err != nil {
				t.Fatal(err)
			}
			if m.Count != 30 {
				t.Fatalf("exported %d events, want 30", m.Count)
			}
			if _, err := VerifyExport(dir, e.log.VerifierKey()); err != nil {
				t.Fatalf("fresh export does not verify: %v", err)
			}
			// The export itself is audited.
			evs, _ := e.log.Query(context.Background(), Filter{Type: EventExport})
			if len(evs) != 1 || evs[0].User != "auditor" {
				t.Fatalf("export events = %+v", evs)
			}
			// Change one character of the events file.
			p := filepath.Join(dir, m.File)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), "ls 7", "ls 8", 1)), 0o600)
			if _, err := VerifyExport(dir, e.log.VerifierKey()); !errors.Is(err, ErrExportInvalid) || !strings.Contains(err.Error(), "was modified") {
				t.Fatalf("modified export: err = %v", err)
			}
			// Re-hash the file into the manifest: the signature then fails.
			os.WriteFile(p, b, 0o600)
			mb, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
			os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(strings.Replace(string(mb), `"count": 30`, `"count": 29`, 1)), 0o600)
			if _, err := VerifyExport(dir, e.log.VerifierKey()); err == nil || !strings.Contains(err.Error(), "modified after it was signed") {
				t.Fatalf("modified manifest: err = %v", err)
			}
		})
	}
}

func TestAuditQueryFilters(t *testing.T) {
	e := newAuditEnv(t)
	e.append(t, 5)
	e.log.Append(context.Background(), Event{Type: EventSessionEnd, User: "bob", Target: "web-1", Reason: "exited 100%_done"})
	tests := []struct {
		name string
		f    Filter
		want int
	}{
		{"user", Filter{User: "alice"}, 5},
		{"type prefix", Filter{Type: "session."}, 1},
		{"text", Filter{Text: "ls 3"}, 1},
		{"text with wildcards is literal", Filter{Text: "100%_"}, 1},
		{"percent alone", Filter{Text: "%"}, 1},
		{"time range", Filter{Since: e.now.Add(-2 * time.Second), Until: e.now}, 2},
		{"target", Filter{Target: "db-1"}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := e.log.Query(context.Background(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != tt.want {
				t.Fatalf("got %d events, want %d", len(evs), tt.want)
			}
		})
	}
}

func TestCheckpointShippedToFile(t *testing.T) {
	e := newAuditEnv(t)
	file := filepath.Join(t.TempDir(), "checkpoints")
	l, err := Open(e.db, e.sec, Options{CheckpointInterval: -1, CheckpointFile: file})
	if err != nil {
		t.Fatal(err)
	}
	l.Append(context.Background(), Event{Type: EventLogin, User: "alice"})
	l.Close()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ParseCheckpoint(b[:len(b)-1], l.VerifierKey())
	if err != nil || cp.Size != 1 {
		t.Fatalf("checkpoint %+v err %v", cp, err)
	}
	if _, err := ParseCheckpoint(b[:len(b)-1], strings.Replace(l.VerifierKey(), "gatehouse-audit", "other", 1)); err == nil {
		t.Fatal("checkpoint verified with the wrong key")
	}
}

func FuzzCanonical(f *testing.F) {
	f.Add("command", "alice", "db-1", "root", "k", "v", "a", int64(1))
	f.Add("", "", "", "", "", "", "", int64(0))
	f.Fuzz(func(t *testing.T, typ, user, target, login, k, v, reason string, id int64) {
		a := Event{ID: id, Time: time.Unix(0, id), Type: typ, User: user, Target: target, Login: login, Reason: reason,
			Details: map[string]any{k: v}}
		sanitize(&a) // as Append does
		// Moving bytes between adjacent fields must change the encoding.
		b := a
		b.User, b.Target = a.User+a.Target, ""
		target, k, v = a.Target, "", ""
		for kk, vv := range a.Details {
			k, v = kk, vv.(string)
		}
		ca, err := Canonical(&a)
		if err != nil {
			t.Fatal(err)
		}
		cb, _ := Canonical(&b)
		if target != "" && string(ca) == string(cb) {
			t.Fatalf("ambiguous encoding for %+v and %+v", a, b)
		}
		d, err := CanonicalDetails(a.Details)
		if err != nil {
			return // invalid UTF-8: Append sanitizes before encoding
		}
		back, err := ParseDetails(string(d))
		if err != nil || back[k] != v {
			t.Fatalf("details round trip: %v %v", back, err)
		}
	})
}
