package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// gateSink wraps a recording's file: once armed, each write waits for a
// token on gate (after telling entered), and fails with failErr from the
// failAt-th write on (counting from when it was installed; 0: never).
type gateSink struct {
	recSink
	mu      sync.Mutex
	gate    chan struct{} // nil: writes pass at once
	entered chan struct{}
	writes  int
	failAt  int
	failErr error
}

func (g *gateSink) Write(p []byte) (int, error) {
	g.mu.Lock()
	g.writes++
	gate, fail := g.gate, g.failAt > 0 && g.writes >= g.failAt
	g.mu.Unlock()
	if gate != nil {
		g.entered <- struct{}{}
		<-gate
	}
	if fail {
		return 0, g.failErr
	}
	return g.recSink.Write(p)
}

// install puts g in front of rec's sink (before any event is added).
func (g *gateSink) install(rec *Recording) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	g.recSink = rec.f
	rec.f = g
}

func rawStreams(t *testing.T, r *Recordings, id string) (map[string]*bytes.Buffer, RawStreams) {
	t.Helper()
	got := map[string]*bytes.Buffer{}
	res, err := r.ExportRaw(context.Background(), id, true, func(name string) (io.Writer, error) {
		got[name] = &bytes.Buffer{}
		return got[name], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, res
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// Output and stderr interleaved in chunks of every size, across many
// batches written by the writer goroutine, come back byte for byte and in
// order, with their streams' hashes.
func TestRecordingWriterKeepsOrder(t *testing.T) {
	r, _, dir := newRecordings(t, RecordingOptions{})
	rec, err := r.Start(SessionInfo{SessionID: "s", User: "u", Target: "t", Login: "l", Command: "x"})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var out, errs []byte
	for len(out) < 6*flushSize {
		n := 1 + rng.IntN(70000)
		chunk := make([]byte, n)
		for i := range chunk {
			chunk[i] = byte(rng.Uint32())
		}
		if rng.IntN(4) == 0 {
			errs = append(errs, chunk...)
			rec.Stderr(chunk)
		} else {
			out = append(out, chunk...)
			rec.Output(chunk)
		}
	}
	sum, err := rec.Close("exited")
	if err != nil || !sum.Complete {
		t.Fatalf("close: %+v %v", sum, err)
	}
	got, res := rawStreams(t, r, rec.ID())
	if !bytes.Equal(got["stdout"].Bytes(), out) || !bytes.Equal(got["stderr"].Bytes(), errs) {
		t.Fatalf("streams differ: stdout %d of %d bytes, stderr %d of %d", got["stdout"].Len(), len(out), got["stderr"].Len(), len(errs))
	}
	if s := sum.Streams["stdout"]; s.SHA256 != sha(out) || s.Bytes != int64(len(out)) || res.Sealed["stdout"] != s {
		t.Fatalf("stdout summary %+v, sealed %+v", s, res.Sealed["stdout"])
	}
	if s := sum.Streams["stderr"]; s.SHA256 != sha(errs) {
		t.Fatalf("stderr summary %+v", s)
	}
	// The seal's hash, taken as the file was written, is the file's.
	file, err := os.ReadFile(filepath.Join(dir, rec.ID()+".ghrec"))
	if err != nil || sum.SHA256 != sha(file) {
		t.Fatalf("seal sha256 %s, file's %s (%v)", sum.SHA256, sha(file), err)
	}
}

// A stream that passes StreamFullBytes across many batches keeps its
// stored prefix exact and its hash over every byte: the bytes no longer
// stored are hashed by the writer, after the stored ones.
func TestRecordingWriterStreamFullHash(t *testing.T) {
	const full = 3 * flushSize / 2
	r, _, _ := newRecordings(t, RecordingOptions{StreamFullBytes: full})
	rec, err := r.Start(SessionInfo{SessionID: "s", User: "u", Target: "t", Login: "l", Command: "x"})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var out, errs []byte
	for len(out) < 8*flushSize {
		chunk := make([]byte, 1+rng.IntN(40000))
		for i := range chunk {
			chunk[i] = byte(rng.Uint32())
		}
		out = append(out, chunk...)
		rec.Output(chunk)
		if rng.IntN(8) == 0 {
			errs = append(errs, chunk[:100]...)
			rec.Stderr(chunk[:100])
		}
	}
	sum, err := rec.Close("exited")
	if err != nil || !sum.Complete {
		t.Fatalf("close: %+v %v", sum, err)
	}
	so := sum.Streams["stdout"]
	if so.Bytes != int64(len(out)) || so.SHA256 != sha(out) || so.Stored < full || so.Stored >= full+40000 {
		t.Fatalf("stdout summary %+v, want %d bytes, sha %s", so, len(out), sha(out))
	}
	if se := sum.Streams["stderr"]; se.SHA256 != sha(errs) || se.Stored != int64(len(errs)) {
		t.Fatalf("stderr summary %+v", se)
	}
	got, _ := rawStreams(t, r, rec.ID())
	if !bytes.Equal(got["stdout"].Bytes(), out[:so.Stored]) || !bytes.Equal(got["stderr"].Bytes(), errs) {
		t.Fatalf("stored stdout %d bytes, want the first %d", got["stdout"].Len(), so.Stored)
	}
}

// waitBlockedInFlush returns once a goroutine waits in flushIfFull (the
// queue is full), or fails the test if done closes first (nothing held the
// producer back).
func waitBlockedInFlush(t *testing.T, done <-chan struct{}) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for {
		select {
		case <-done:
			t.Fatal("the producer finished while the recording's writes were held: no backpressure")
		default:
		}
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "sync.(*Cond).Wait") && strings.Contains(g, "(*Recording).flushIfFull") {
				return
			}
		}
		runtime.Gosched()
	}
}

// A recording whose writes do not keep up stalls the session (Output
// waits) with at most maxQueued batches queued; nothing is dropped, and a
// Close while writes are still held seals everything queued first.
func TestRecordingWriterBackpressureAndCloseDrains(t *testing.T) {
	r, _, _ := newRecordings(t, RecordingOptions{})
	rec, err := r.Start(SessionInfo{SessionID: "s", User: "u", Target: "t", Login: "l", Command: "x"})
	if err != nil {
		t.Fatal(err)
	}
	g := &gateSink{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	g.install(rec)
	const batches = 8
	all := bytes.Repeat([]byte("0123456789abcdef"), batches*flushSize/16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := all; len(p) > 0; p = p[min(len(p), 32<<10):] {
			rec.Output(p[:min(len(p), 32<<10)])
		}
	}()
	<-g.entered // the writer holds the first batch
	waitBlockedInFlush(t, done)
	rec.mu.Lock()
	queued := len(rec.batches)
	rec.mu.Unlock()
	if queued > maxQueued+1 {
		t.Fatalf("%d batches queued while the producer waits, want at most %d", queued, maxQueued+1)
	}
	go func() {
		for range g.entered {
			g.gate <- struct{}{}
		}
	}()
	g.gate <- struct{}{}
	<-done
	closed := make(chan Summary)
	go func() {
		// Close while writes are still being held one by one.
		s, err := rec.Close("exited")
		if err != nil {
			t.Error(err)
		}
		closed <- s
	}()
	sum := <-closed
	close(g.entered)
	if !sum.Complete {
		t.Fatalf("summary %+v", sum)
	}
	got, _ := rawStreams(t, r, rec.ID())
	if !bytes.Equal(got["stdout"].Bytes(), all) || sum.Streams["stdout"].SHA256 != sha(all) {
		t.Fatalf("stdout: %d of %d bytes", got["stdout"].Len(), len(all))
	}
}

// A write that fails in the writer goroutine marks the recording failed
// (Failed, Err, OnFail: what ends the session), later events are refused,
// the seal says incomplete, and the stream's hash still covers every byte
// that passed before the failure.
func TestRecordingWriterFailure(t *testing.T) {
	r, _, _ := newRecordings(t, RecordingOptions{})
	rec, err := r.Start(SessionInfo{SessionID: "s", User: "u", Target: "t", Login: "l", Command: "x"})
	if err != nil {
		t.Fatal(err)
	}
	diskFull := errors.New("no space left on device")
	g := &gateSink{failAt: 2, failErr: diskFull}
	g.install(rec)
	ended := make(chan struct{})
	rec.OnFail(func() { close(ended) })
	chunk := bytes.Repeat([]byte{'x'}, 32<<10)
	var passed []byte
	for i := 0; i < 64 && rec.Err() == nil; i++ {
		if err := rec.Output(chunk); err != nil {
			break
		}
		passed = append(passed, chunk...)
	}
	<-rec.Failed()
	<-ended
	if !errors.Is(rec.Err(), diskFull) {
		t.Fatalf("Err = %v", rec.Err())
	}
	if err := rec.Output(chunk); !errors.Is(err, diskFull) {
		t.Fatalf("an event after the failure: %v", err)
	}
	sum, _ := rec.Close("exited")
	if sum.Complete || !strings.Contains(sum.Reason, "no space left") {
		t.Fatalf("summary %+v", sum)
	}
	// The call that met the failure may have had its bytes taken (they
	// went into the batch before the writer's failure was seen).
	s := sum.Streams["stdout"]
	if s.Bytes != int64(len(passed)) && s.Bytes != int64(len(passed)+len(chunk)) {
		t.Fatalf("stdout summary %+v after %d bytes passed", s, len(passed))
	}
	if s.SHA256 != sha(bytes.Repeat([]byte{'x'}, int(s.Bytes))) {
		t.Fatalf("stdout hash %s does not cover the %d bytes that passed", s.SHA256, s.Bytes)
	}
}
