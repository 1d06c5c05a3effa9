package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// s3World is a real versitygw with one bucket and a database for
// recordings rows.
type s3World struct {
	gw   *testenv.VersityGW
	db   *store.DB
	dir  string
	opts S3Options
}

func newS3World(t testing.TB, objectLock bool) *s3World {
	t.Helper()
	gw := testenv.StartVersityGW(t)
	gw.SetEnv(t)
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &s3World{gw: gw, db: db, dir: dir, opts: S3Options{Endpoint: gw.Endpoint, Bucket: "recs", Prefix: "gh/", Region: "us-east-1"}}
	if objectLock {
		w.opts.ObjectLockDays = 1
	}
	gw.CreateBucket(t, "recs", objectLock)
	return w
}

func (w *s3World) open(t testing.TB, flush time.Duration) *Recordings {
	t.Helper()
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	o := w.opts
	r, err := OpenRecordings(filepath.Join(w.dir, "recordings"), w.db, kr, RecordingOptions{FlushInterval: flush, S3: &o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestS3RecordingRoundTrip: a recording written to a real S3-compatible
// server is encrypted there, nothing of it is in the local directory, its
// summary hash is the hash of its objects, and it replays and exports.
func TestS3RecordingRoundTrip(t *testing.T) {
	w := newS3World(t, false)
	r := w.open(t, 0)
	rec, err := r.Start(SessionInfo{SessionID: "s1", User: "alice", Target: "db-1", Login: "root", Interactive: true})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("hello from s3\r\n"))
	rec.Input([]byte("secret"))
	sum, err := rec.Close("exited")
	if err != nil || !sum.Complete {
		t.Fatalf("summary %+v err %v", sum, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(w.dir, "recordings")); len(ents) != 0 {
		t.Fatalf("recording written to the local directory: %v", ents)
	}
	rc, n, err := r.s3.open(context.Background(), rec.ID())
	if err != nil || n < 2 {
		t.Fatalf("segments %d err %v", n, err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.HasPrefix(raw, []byte(recMagic)) || bytes.Contains(raw, []byte("hello")) || bytes.Contains(raw, []byte("secret")) {
		t.Fatal("objects are not the sealed recording")
	}
	if got := sha256Hex(raw); got != sum.SHA256 {
		t.Fatalf("summary hash %s, objects hash %s", sum.SHA256, got)
	}
	_, evs := castLines(t, r, rec.ID(), true)
	if outputOf(evs, "o") != "hello from s3\r\n" || outputOf(evs, "i") != "secret" {
		t.Fatalf("replayed %v", evs)
	}
	m, err := r.Meta(context.Background(), rec.ID())
	if err != nil || !m.Complete || m.SHA256 != sum.SHA256 {
		t.Fatalf("meta %+v err %v", m, err)
	}
}

// TestS3RecordingCrashRecovered: a gateway that dies mid-session (no Close)
// leaves segment objects up to its last flush; a new process seals the
// recording as incomplete by adding a final segment, and it plays.
func TestS3RecordingCrashRecovered(t *testing.T) {
	w := newS3World(t, true)
	r := w.open(t, 20*time.Millisecond)
	rec, err := r.Start(SessionInfo{SessionID: "s-crash", User: "alice", Target: "db-1", Login: "root"})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("before the crash\r\n"))
	waitFlushedSegment(t, r, rec.ID()) // the flusher writes it as its own segment
	r.Close()                          // the process dies: no seal, no more flushes
	r2 := w.open(t, 0)
	recs, err := r2.Recover(context.Background())
	if err != nil || len(recs) != 1 || recs[0].SessionID != "s-crash" {
		t.Fatalf("recovered %+v err %v", recs, err)
	}
	m, err := r2.Meta(context.Background(), rec.ID())
	if err != nil || m.Complete || !strings.Contains(m.Reason, "stopped unexpectedly") || m.Ended.IsZero() {
		t.Fatalf("meta %+v err %v", m, err)
	}
	_, evs := castLines(t, r2, rec.ID(), false)
	if outputOf(evs, "o") != "before the crash\r\n" {
		t.Fatalf("recovered output %q", outputOf(evs, "o"))
	}
	rc, _, _ := r2.s3.open(context.Background(), rec.ID())
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if sha256Hex(raw) != m.SHA256 {
		t.Fatal("sealed hash is not the objects' hash")
	}
}

// TestS3ObjectLockRefusesDelete: with object_lock_days set, deleting a
// recording's object version with Gatehouse's own credentials is refused
// with AccessDenied, and the recording still plays.
func TestS3ObjectLockRefusesDelete(t *testing.T) {
	w := newS3World(t, true)
	r := w.open(t, 0)
	rec, err := r.Start(SessionInfo{SessionID: "s-lock", User: "alice", Target: "db-1", Login: "root"})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("evidence\r\n"))
	if _, err := rec.Close("exited"); err != nil {
		t.Fatal(err)
	}
	key := r.s3.segKey(rec.ID(), 0)
	head, err := r.s3.c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("recs"), Key: aws.String(key)})
	if err != nil || head.ObjectLockMode != "COMPLIANCE" || head.VersionId == nil {
		t.Fatalf("head %+v err %v", head, err)
	}
	_, err = r.s3.c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("recs"), Key: aws.String(key),
		VersionId: head.VersionId})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
		t.Fatalf("delete of a locked version: %v, want AccessDenied", err)
	}
	_, evs := castLines(t, r, rec.ID(), false)
	if outputOf(evs, "o") != "evidence\r\n" {
		t.Fatal("recording changed after the refused delete")
	}
	// Retention never claims to have deleted what it cannot.
	res, err := r.Prune(context.Background(), nil, time.Now().Add(time.Hour), "test")
	if err != nil || res.Count != 0 {
		t.Fatalf("prune %+v err %v", res, err)
	}
}

// TestS3StoreDownFailsClosed: with the object store down, a new recording
// cannot start (so no session runs unrecorded), Check reports it (readyz),
// and a live recording fails at its next flush (so its session ends).
func TestS3StoreDownFailsClosed(t *testing.T) {
	w := newS3World(t, false)
	r := w.open(t, 20*time.Millisecond)
	live, err := r.Start(SessionInfo{SessionID: "s-live", User: "alice", Target: "db-1", Login: "root"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(context.Background()); err != nil {
		t.Fatalf("check with the store up: %v", err)
	}
	w.gw.Stop()
	if err := r.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "object store bucket recs unreachable") {
		t.Fatalf("check with the store down: %v", err)
	}
	if _, err := r.Start(SessionInfo{SessionID: "s-new", User: "alice", Target: "db-1", Login: "root"}); err == nil ||
		!strings.Contains(err.Error(), "recorder: object store: write") {
		t.Fatalf("start with the store down: %v", err)
	}
	live.Output([]byte("lost?"))
	select {
	case <-live.Failed():
	case <-time.After(60 * time.Second):
		t.Fatal("live recording did not fail with the store down")
	}
	if !strings.Contains(live.Err().Error(), "object store") {
		t.Fatalf("failure %v", live.Err())
	}
	if n := countRows(t, w.db, "s-new"); n != 0 {
		t.Fatalf("a recording row exists for the refused session: %d", n)
	}
}

func countRows(t *testing.T, db *store.DB, session string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM recordings WHERE session_id = ?`, session).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestS3TamperedObjectsDetected: whoever holds the bucket (without the
// master key) changes a segment, removes one, or writes a segment of a
// recording that already exists; replay refuses the first two, the store
// refuses the third.
func TestS3TamperedObjectsDetected(t *testing.T) {
	w := newS3World(t, false)
	r := w.open(t, 0)
	var ids []string
	for i := 0; i < 2; i++ {
		rec, err := r.Start(SessionInfo{SessionID: "s-tamper", User: "alice", Target: "db-1", Login: "root"})
		if err != nil {
			t.Fatal(err)
		}
		rec.Output([]byte("first\r\n"))
		rec.flushIfDirty()
		rec.Output([]byte("second\r\n"))
		if _, err := rec.Close("exited"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID())
	}
	c := w.gw.Client()
	ctx := context.Background()
	get := func(key string) []byte {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("recs"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		b, _ := io.ReadAll(out.Body)
		return b
	}
	put := func(key string, b []byte) {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("recs"), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	// A flipped bit in the middle segment.
	k := r.s3.segKey(ids[0], 1)
	b := get(k)
	b[len(b)-1] ^= 1
	put(k, b)
	if _, err := r.OpenCast(ctx, ids[0], false); !errors.Is(err, ErrRecordingCorrupt) {
		t.Fatalf("changed segment: %v, want ErrRecordingCorrupt", err)
	}
	// A segment removed: the rest no longer follows.
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("recs"), Key: aws.String(r.s3.segKey(ids[1], 1))}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.OpenCast(ctx, ids[1], false); !errors.Is(err, ErrRecordingCorrupt) {
		t.Fatalf("removed segment: %v, want ErrRecordingCorrupt", err)
	}
	// A second writer of an existing segment is refused, not overwriting.
	if err := r.s3.put(ids[0], 0, []byte("GHREC1\nforged")); err == nil || !strings.Contains(err.Error(), "PreconditionFailed") {
		t.Fatalf("overwrite of an existing segment: %v, want PreconditionFailed", err)
	}
}

// BenchmarkS3RecordingOutput measures recording to a real S3-compatible
// server (versitygw on loopback, object lock on): session output in 32 KiB
// chunks, sealed and PUT as one object per 256 KiB. MB/s is the upload
// throughput one session's recording sustains.
func BenchmarkS3RecordingOutput(b *testing.B) {
	w := newS3World(b, true)
	r := w.open(b, 0)
	rec, err := r.Start(SessionInfo{SessionID: "bench", User: "u", Target: "t", Login: "l"})
	if err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 2048)
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := rec.Output(chunk); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if _, err := rec.Close("done"); err != nil {
		b.Fatal(err)
	}
}

// TestS3SealRetriedAfterOutage: the store goes down mid-session, so the
// final record cannot be written when the session ends: the row is ended,
// incomplete, with its seal pending (not "sealed" with the final record
// missing). Retries while the store is down change nothing; the first one
// after it is back adds the final record as one more object, and the
// recording plays and hashes to its objects.
func TestS3SealRetriedAfterOutage(t *testing.T) {
	w := newS3World(t, true)
	r := w.open(t, 20*time.Millisecond)
	rec, err := r.Start(SessionInfo{SessionID: "s-outage", User: "alice", Target: "db-1", Login: "root"})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("before the outage\r\n"))
	waitFlushedSegment(t, r, rec.ID()) // the flusher writes it as its own segment
	w.gw.Stop()
	rec.Output([]byte("during the outage\r\n"))
	if _, err := rec.Close("exited"); err == nil {
		t.Fatal("sealed with the store down")
	}
	m, err := r.Meta(context.Background(), rec.ID())
	if err != nil || !m.SealPending || m.Ended.IsZero() || m.Complete {
		t.Fatalf("after the failed seal: %+v %v", m, err)
	}
	if got, err := r.RetryPendingSeals(context.Background()); err != nil || len(got) != 0 {
		t.Fatalf("retry with the store down: %+v %v", got, err)
	}
	w.gw.Start()
	got, err := r.RetryPendingSeals(context.Background())
	if err != nil || len(got) != 1 || got[0].ID != rec.ID() {
		t.Fatalf("retry with the store back: %+v %v", got, err)
	}
	m, err = r.Meta(context.Background(), rec.ID())
	if err != nil || m.SealPending || m.Complete || !strings.Contains(m.Reason, "sealed as incomplete once its store was back") {
		t.Fatalf("after the retry: %+v %v", m, err)
	}
	if _, evs := castLines(t, r, rec.ID(), false); outputOf(evs, "o") != "before the outage\r\n" {
		t.Fatalf("plays %q", outputOf(evs, "o"))
	}
	rc, _, err := r.s3.open(context.Background(), rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if sha256Hex(raw) != m.SHA256 {
		t.Fatalf("row hash %s, objects hash %s", m.SHA256, sha256Hex(raw))
	}
	if again, err := r.RetryPendingSeals(context.Background()); err != nil || len(again) != 0 {
		t.Fatalf("sealed twice: %+v %v", again, err)
	}
}

// waitFlushedSegment waits until recording id has a segment object beyond
// its header, written by the periodic flusher.
func waitFlushedSegment(t *testing.T, r *Recordings, id string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		keys, err := r.s3.segments(context.Background(), id)
		if err == nil && len(keys) >= 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no flushed segment: %v %v", keys, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
