package recorder

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/usererr"
)

// followed collects what Follow sends.
type followed struct {
	mu    sync.Mutex
	lines []string
	done  chan error
}

func (f *followed) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var sb strings.Builder
	for _, l := range f.lines {
		var ev []any
		if json.Unmarshal([]byte(l), &ev) == nil && len(ev) == 3 {
			if s, ok := ev[2].(string); ok && ev[1] == "o" {
				sb.WriteString(s)
			}
		}
	}
	return sb.String()
}

func follow(r *Recordings, id string) *followed {
	f := &followed{done: make(chan error, 1)}
	go func() {
		f.done <- r.Follow(context.Background(), id, 50*time.Millisecond, func(line []byte) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.lines = append(f.lines, string(line))
			return nil
		})
	}()
	return f
}

func waitText(t *testing.T, f *followed, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(f.text(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("follower never saw %q; saw %q", want, f.text())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testFollow: a second Recordings on the same database and store (another
// instance) follows a recording being written by the first: output flushed
// by the writer reaches the follower, keystrokes never do, and Follow
// returns once the recording is sealed.
func testFollow(t *testing.T, writer, other *Recordings) {
	rec, err := writer.Start(SessionInfo{SessionID: "s1", User: "alice", Target: "db-1", Login: "root", Interactive: true})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("before the viewer\r\n"))
	f := follow(other, rec.ID())
	waitText(t, f, "before the viewer")
	rec.Input([]byte("typed-secret"))
	rec.Output([]byte("caf\xc3"))
	rec.Output([]byte("\xa9 while watched\r\n"))
	waitText(t, f, "café while watched")
	if _, err := rec.Close("exited"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("follow: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Follow did not return after the recording was sealed")
	}
	if strings.Contains(strings.Join(f.lines, "\n"), "typed-secret") {
		t.Fatalf("the follower got keystrokes: %q", f.lines)
	}
}

func TestFollowSharedDirectory(t *testing.T) {
	r, db, rdir := newRecordings(t, RecordingOptions{FlushInterval: 100 * time.Millisecond})
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	other, err := OpenRecordings(rdir, db, kr, RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	testFollow(t, r, other)
}

func TestFollowObjectStore(t *testing.T) {
	w := newS3World(t, false)
	testFollow(t, w.open(t, 100*time.Millisecond), w.open(t, 0))
}

// TestFollowRecordingElsewhere: a recording in another instance's own
// directory (no shared store) cannot be followed, and the error says why.
func TestFollowRecordingElsewhere(t *testing.T) {
	r, db, _ := newRecordings(t, RecordingOptions{})
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	other, err := OpenRecordings(t.TempDir(), db, kr, RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	rec, err := r.Start(SessionInfo{SessionID: "s1", User: "alice", Target: "db-1", Login: "root", Interactive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close("exited")
	err = other.Follow(context.Background(), rec.ID(), 0, func([]byte) error { return nil })
	if msg, _ := usererr.Message(err); err == nil || !strings.Contains(msg, "need a shared recording store (recording.s3)") {
		t.Fatalf("follow of another instance's local recording: %v", err)
	}
}
