package audit

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestCheckpointPostedAndStreamed ships checkpoints to a real HTTP server on
// loopback and streams committed events to a file, with a fake clock.
func TestCheckpointPostedAndStreamed(t *testing.T) {
	e := newAuditEnv(t)
	var mu sync.Mutex
	var posted [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, b)
		mu.Unlock()
	}))
	defer srv.Close()
	stream := filepath.Join(t.TempDir(), "events.jsonl")
	clock := time.Date(2026, 11, 22, 12, 30, 45, 0, time.UTC)
	l, err := Open(e.db, e.sec, Options{CheckpointInterval: -1, CheckpointURL: srv.URL,
		Stream: "file:" + stream, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := l.Append(context.Background(), Event{Type: EventLogin, User: u}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !cp.Time.Equal(clock) || cp.Size != 2 {
		t.Fatalf("checkpoint size %d at %v, want 2 at %v (the fake clock)", cp.Size, cp.Time, clock)
	}
	l.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(posted) != 2 { // the explicit one and the one at Close
		t.Fatalf("%d checkpoints POSTed, want 2", len(posted))
	}
	if got, err := ParseCheckpoint(posted[0], l.VerifierKey()); err != nil || got.Root != cp.Root {
		t.Fatalf("posted checkpoint %+v, %v", got, err)
	}
	users := streamedUsers(t, stream)
	if len(users) != 2 || users[0] != "alice" || users[1] != "bob" {
		t.Fatalf("streamed users %v, want [alice bob]", users)
	}
}

func streamedUsers(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var users []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stream line %q: %v", sc.Text(), err)
		}
		u, _ := m["user"].(string)
		users = append(users, u)
	}
	return users
}

func TestAuditStreamRejectsUnknownSpec(t *testing.T) {
	e := newAuditEnv(t)
	if _, err := Open(e.db, e.sec, Options{Stream: "kafka://x"}); err == nil {
		t.Fatal("unknown stream accepted")
	}
}

func TestAuditForgedCheckpointDetected(t *testing.T) {
	e := newAuditEnv(t)
	e.append(t, 3)
	cp, err := e.log.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Claim a smaller tree without re-signing.
	forged := strings.Replace(string(cp.Note), "\n3\n", "\n2\n", 1)
	if _, err := e.db.Exec(`UPDATE audit_checkpoints SET note = ?`, forged); err != nil {
		t.Fatal(err)
	}
	rep := e.verify(t, nil)
	if rep.OK || !strings.Contains(rep.Problem, "checkpoint 1 of 1 in the database does not verify: audit: checkpoint signature: invalid signature") {
		t.Fatalf("report = %s", rep)
	}
}

func TestSplitCheckpoints(t *testing.T) {
	e := newAuditEnv(t)
	var file []byte
	for i := 1; i <= 3; i++ {
		e.append(t, 1)
		cp, err := e.log.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		file = append(append(file, cp.Note...), '\n') // as CheckpointFile is written
	}
	notes := SplitCheckpoints(file)
	if len(notes) != 3 {
		t.Fatalf("%d notes, want 3", len(notes))
	}
	for i, n := range notes {
		cp, err := ParseCheckpoint(n, e.log.VerifierKey())
		if err != nil || cp.Size != int64(i+1) {
			t.Fatalf("note %d: size %d, %v", i, cp.Size, err)
		}
	}
	if got := SplitCheckpoints([]byte("junk\n" + string(file))); len(got) != 4 {
		t.Fatalf("leading junk: %d notes, want 4 (junk kept so it fails)", len(got))
	}
}

// FuzzSplitCheckpoints: a checkpoint file comes from other storage; splitting
// must never drop a note boundary or return a note that is not terminated.
func FuzzSplitCheckpoints(f *testing.F) {
	f.Add([]byte("gatehouse audit log\n1\nAAAA\n2026-11-22T10:00:00Z\n\n— gatehouse-audit x\n\n"))
	f.Add([]byte("junk\ngatehouse audit log\n2\n\ngatehouse audit log\n3\n"))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		notes := SplitCheckpoints(b)
		headers := strings.Count("\n"+string(b), "\n"+checkpointHeader+"\n")
		if len(notes) < headers {
			t.Fatalf("%d notes for %d headers", len(notes), headers)
		}
		for i, n := range notes {
			if len(n) == 0 || n[len(n)-1] != '\n' {
				t.Fatalf("note %d not terminated: %q", i, n)
			}
			if i > 0 && !strings.HasPrefix(string(n), checkpointHeader+"\n") {
				t.Fatalf("note %d does not start with the header: %q", i, n)
			}
		}
	})
}

// FuzzParseCheckpoint: checkpoint and head notes come back from other
// storage (the off-box file, the database). Whatever text the key signed,
// parsing must not panic, must name the signing key, never yield negative
// numbers, and a head must never parse as a checkpoint or the reverse.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add("gatehouse audit log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n2026-11-22T10:00:00Z\ncheckpoint 3\nkey 00000000\n")
	f.Add("gatehouse audit log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n2026-11-22T10:00:00Z\n")
	f.Add("gatehouse audit head\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n2026-11-22T10:00:00.5Z\ncheckpoints 2\nkey 00000000\n")
	f.Add("gatehouse audit log\n-1\n\n\ncheckpoint 0\n")
	skey, vkey, err := note.GenerateKey(rand.Reader, KeyName)
	if err != nil {
		f.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	keys, _ := ParseKeys(vkey)
	id := keys[0].ID
	f.Fuzz(func(t *testing.T, text string) {
		text = strings.ReplaceAll(text, "key 00000000", "key "+id)
		msg, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			return // not a valid note text (no final newline, control characters)
		}
		cp, cerr := parseCheckpoint(msg, keys)
		h, herr := parseHead(msg, keys)
		if cerr == nil && herr == nil {
			t.Fatalf("parsed as both a checkpoint and a head: %q", text)
		}
		if cerr == nil {
			if cp.KeyID != id || cp.Size < 0 || cp.Seq < 0 {
				t.Fatalf("checkpoint %+v from %q", cp, text)
			}
		}
		if herr == nil && (h.KeyID != id || h.Size < 0 || h.Checkpoints < 0) {
			t.Fatalf("head %+v from %q", h, text)
		}
	})
}
