package audit

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func TestAuditKeyRotationFollowsKeyIDs(t *testing.T) {
	e, _ := history(t)
	before := e.log.Keys()
	e.now = e.now.Add(time.Minute)
	old, cur, err := e.log.RotateKey(context.Background(), "cli:root")
	if err != nil {
		t.Fatal(err)
	}
	if old.ID != before[0].ID || cur.ID == old.ID || !old.Retired.Equal(e.now) || !cur.Active() {
		t.Fatalf("rotation: old %+v new %+v (before %+v)", old, cur, before)
	}
	e.now = e.now.Add(time.Minute)
	e.append(t, 3)
	if _, err := e.log.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := e.verifyFull(t)
	if !rep.OK || !strings.Contains(rep.String(), "with keys "+cur.ID+" (active), "+old.ID+" (retired "+stamp(old.Retired)+")") {
		t.Fatalf("after rotation: %s", rep)
	}
	// The rotation is in the log, with both key ids.
	evs, _ := e.log.Query(context.Background(), Filter{Type: EventKeyRotated})
	if len(evs) != 1 || evs[0].Details["old_key"] != old.ID || evs[0].Details["new_key"] != cur.ID || evs[0].User != "cli:root" {
		t.Fatalf("rotation events: %+v", evs)
	}
	// Checkpoints carry key ids: old ones name the old key, new ones the new.
	notes, _ := storedCheckpoints(context.Background(), e.db.DB)
	first, _ := parseCheckpoint(notes[0], e.log.Keys())
	last, _ := parseCheckpoint(notes[len(notes)-1], e.log.Keys())
	if first.KeyID != old.ID || last.KeyID != cur.ID || !strings.Contains(string(last.Note), "\nkey "+cur.ID+"\n") {
		t.Fatalf("checkpoint key ids: first %s, last %s", first.KeyID, last.KeyID)
	}
	// Verifying with the new key alone cannot check the old checkpoints.
	rep, _ = Verify(context.Background(), e.db.DB, VerifyOptions{Keys: Keys{cur}, Interval: -1})
	if rep.OK || !strings.Contains(rep.Problem, "not signed by a known audit key (signed by gatehouse-audit+"+old.ID+")") {
		t.Fatalf("verify with the new key only: %s", rep)
	}
}

// A retired key that leaks cannot sign new checkpoints: verify checks the
// signing time against the retirement.
func TestAuditRetiredKeyCannotSign(t *testing.T) {
	e, file := history(t)
	f, _, _, err := readKeyFile(context.Background(), e.sec) // what leaked
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.log.RotateKey(context.Background(), "cli:root"); err != nil {
		t.Fatal(err)
	}
	e.append(t, 2)
	signer, err := note.NewSigner(f.Signer)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(25) // 22 + rotation event + 2
	root := treeRoot(t, e, size)
	at := e.now.Add(time.Hour).Truncate(time.Second)
	msg, _ := note.Sign(&note.Note{Text: checkpointText(Checkpoint{Size: size, Root: root, Time: at, Seq: 99, KeyID: f.Keys[0].ID})}, signer)
	rep, err := Verify(context.Background(), e.db.DB, VerifyOptions{Keys: e.log.Keys(), Extra: msg, ExtraName: file, Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := "was signed at " + stamp(at) + " by key " + f.Keys[0].ID + ", retired at " + stamp(e.log.Keys()[1].Retired) + " (a retired key must not sign)"
	if rep.OK || !strings.Contains(rep.Problem, want) {
		t.Fatalf("report = %s\nwant %s", rep, want)
	}
}

// A log written by the earlier version (one sealed key, no head) is verified
// and adopted on first open; the legacy secret cannot be adopted twice.
func TestAuditAdoptsLegacyLog(t *testing.T) {
	e, _ := history(t)
	e.log.Close()
	f, _, _, _ := readKeyFile(context.Background(), e.sec)
	legacy, _ := json.Marshal(legacyKeys{Signer: f.Signer, Verifier: f.Keys[0].Verifier})
	if err := e.sec.Put(context.Background(), auditSecret, legacy); err != nil {
		t.Fatal(err)
	}
	mustExec(t, e, `DELETE FROM secrets WHERE name = ?; DELETE FROM audit_head`, auditKeysSecret)
	l, err := Open(e.db, e.sec, Options{CheckpointInterval: -1, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Keys()[0].ID != f.Keys[0].ID {
		t.Fatalf("adopted key %s, want %s", l.Keys()[0].ID, f.Keys[0].ID)
	}
	if rep, _ := l.Verify(context.Background()); !rep.OK {
		t.Fatalf("adopted log: %s", rep)
	}
	// An attacker deleting the key list and the head now gets no adoption.
	mustExec(t, e, `DELETE FROM secrets WHERE name = ?; DELETE FROM audit_head`, auditKeysSecret)
	if _, err := Open(e.db, e.sec, Options{CheckpointInterval: -1}); err == nil {
		t.Fatal("a log with its key list deleted was adopted again")
	}
}
