package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// sessionEnd returns the session.end event of the session whose command
// mentions marker.
func sessionEnd(t *testing.T, w *world, marker string) audit.StoredEvent {
	t.Helper()
	s := endedSession(t, w, marker)
	var end audit.StoredEvent
	waitFor(t, "the session.end event", func() bool {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionEnd})
		for _, ev := range evs {
			if ev.SessionID == s.ID {
				end = ev
				return true
			}
		}
		return false
	})
	return end
}

func detail(ev audit.StoredEvent, key string) string {
	switch x := ev.Details[key].(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// TestLargeDownloadArrivesWhole downloads 1.2 GB with `ssh host cat FILE`
// (no terminal): nothing cuts it off, the client gets every byte, and the
// recording keeps the stream's length and SHA-256 — equal to the client's —
// while storing only the first recording.stream_full_bytes (64 MiB).
func TestLargeDownloadArrivesWhole(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	// The target is on this machine: a sparse file with a random head.
	file := filepath.Join(t.TempDir(), "big.bin")
	head := make([]byte, 1<<20)
	rand.Read(head)
	if err := os.WriteFile(file, head, 0o644); err != nil {
		t.Fatal(err)
	}
	const size = 1_200_000_000
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "cat "+file)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb syncBuffer
	c.Stderr = &errb
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("ssh: %v; stderr %q", err, errb.String())
	}
	took := time.Since(start)
	t.Logf("received %d bytes in %v (%.0f MB/s)", n, took, float64(n)/took.Seconds()/1e6)
	if n != size {
		t.Fatalf("received %d bytes, want %d", n, size)
	}
	want := hex.EncodeToString(h.Sum(nil))
	end := sessionEnd(t, w, file)
	if got := detail(end, "stdout_sha256"); got != want {
		t.Fatalf("recorded stdout sha256 %q, client's %q (details %v)", got, want, end.Details)
	}
	if got := detail(end, "stdout_bytes"); got != "1200000000" {
		t.Fatalf("recorded stdout bytes %q", got)
	}
	if !strings.Contains(detail(end, "recording_note"), "recording.stream_full_bytes") || end.Reason != "exited" {
		t.Fatalf("session.end %q %v", end.Reason, end.Details)
	}
	// Only the first 64 MiB (and a chunk) were stored.
	s := endedSession(t, w, file)
	rec, err := os.Stat(filepath.Join(w.dir, "data", "recordings", s.RecordingID+".ghrec"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Size() > 80<<20 || rec.Size() < 64<<20 {
		t.Fatalf("recording is %d bytes", rec.Size())
	}
	if !s.RecordingComplete {
		t.Fatalf("recording marked incomplete: %+v", s)
	}
}

// TestRawExportIsExact records binary stdout, stderr and an upload on
// stdin, and `gatehouse recording export --raw` gives back exactly the
// recorded bytes of each stream; past stream_full_bytes, exactly the stored
// prefix, with the seal's SHA-256 of the whole stream.
func TestRawExportIsExact(t *testing.T) {
	bin := gatehouseBinary(t)
	w := newWorldWith(t, "", "recording:\n  stream_full_bytes: 1048576\n")
	alice := w.newUser("alice", time.Hour)
	dir := t.TempDir()
	small := filepath.Join(dir, "small.bin") // under the limit: stored whole
	big := filepath.Join(dir, "big.bin")     // over it: a prefix stored
	sb := make([]byte, 300_000)
	bb := make([]byte, 3_000_000)
	rand.Read(sb)
	rand.Read(bb)
	os.WriteFile(small, sb, 0o644)
	os.WriteFile(big, bb, 0o644)
	cmd := "cat " + small + "; cat " + big + " >&2; cat > /dev/null"
	c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", cmd)
	c.Stdin = bytes.NewReader(bb) // an upload of 3 MB
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), sb) || !bytes.Equal(errb.Bytes(), bb) {
		t.Fatalf("the client got %d/%d bytes", out.Len(), errb.Len())
	}
	s := endedSession(t, w, small)
	exp := filepath.Join(dir, "export")
	msg := w.cli(t, bin, "recording", "export", s.RecordingID, "--raw", "--input", "--out", exp)
	t.Log(msg)
	got, _ := os.ReadFile(filepath.Join(exp, "stdout"))
	if !bytes.Equal(got, sb) {
		t.Fatalf("raw stdout: %d bytes, differs from the %d sent", len(got), len(sb))
	}
	for _, stream := range []string{"stderr", "stdin"} {
		got, _ := os.ReadFile(filepath.Join(exp, stream))
		if len(got) < 1<<20 || len(got) >= len(bb) || !bytes.Equal(got, bb[:len(got)]) {
			t.Fatalf("raw %s: %d bytes, not a prefix of at least 1 MiB of the %d sent", stream, len(got), len(bb))
		}
	}
	sum := sha256.Sum256(bb)
	whole := hex.EncodeToString(sum[:])
	if strings.Count(msg, "of 3000000 bytes recorded (recording.stream_full_bytes); sha256 of all 3000000 bytes "+whole) != 2 {
		t.Fatalf("export output:\n%s", msg)
	}
	end := sessionEnd(t, w, small)
	if detail(end, "stdin_sha256") != whole || detail(end, "stderr_sha256") != whole {
		t.Fatalf("session.end details %v", end.Details)
	}
}
