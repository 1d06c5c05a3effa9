package gateway

import (
	"bytes"
	"errors"
	"math/rand"
	"sync"
	"testing"
	"time"
)

// gatedWriter collects what it is given; while gate is closed, Write waits.
type gatedWriter struct {
	mu     sync.Mutex
	got    bytes.Buffer
	open   chan struct{}
	failAt int // fail the write that would pass this many bytes (0: never)
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failAt > 0 && g.got.Len()+len(p) > g.failAt {
		return 0, errors.New("outer channel closed")
	}
	return g.got.Write(p)
}

func (g *gatedWriter) bytes() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]byte(nil), g.got.Bytes()...)
}

func openGate() chan struct{} { c := make(chan struct{}); close(c); return c }

// Every byte written reaches the outer channel once, in order, whatever the
// sizes of the writes; once drained no goroutine is left running.
func TestJumpWriterKeepsOrder(t *testing.T) {
	g := &gatedWriter{open: openGate()}
	j := newJumpWriter(g)
	var want bytes.Buffer
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		p := make([]byte, rng.Intn(40<<10)+1)
		rng.Read(p)
		want.Write(p)
		if n, err := j.Write(p); n != len(p) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if !j.flush(time.Minute) {
		t.Fatal("queue did not drain")
	}
	if !bytes.Equal(g.bytes(), want.Bytes()) {
		t.Fatalf("outer channel got %d bytes, not the %d written in order", len(g.bytes()), want.Len())
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running || j.queued != 0 || j.queue != nil {
		t.Fatalf("idle writer still holds state: running=%v queued=%d", j.running, j.queued)
	}
}

// A client that stops reading stops the writer: no more than jumpQueueMax
// bytes wait in the gateway, and the rest arrives once it reads again.
func TestJumpWriterBackpressure(t *testing.T) {
	g := &gatedWriter{open: make(chan struct{})}
	j := newJumpWriter(g)
	const total = 4 << 20
	done := make(chan error, 1)
	go func() {
		p := bytes.Repeat([]byte("x"), 32<<10)
		for n := 0; n < total; n += len(p) {
			if _, err := j.Write(p); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// Wait until the writer is held back by the full queue.
	for {
		j.mu.Lock()
		q := j.queued
		j.mu.Unlock()
		if q > jumpQueueMax-32<<10 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("all %d bytes were accepted while the client read nothing (err %v)", total, err)
	default:
	}
	j.mu.Lock()
	if j.queued > jumpQueueMax {
		t.Errorf("%d bytes queued, more than the %d allowed", j.queued, jumpQueueMax)
	}
	j.mu.Unlock()
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !j.flush(time.Minute) {
		t.Fatal("queue did not drain")
	}
	if n := len(g.bytes()); n != total {
		t.Fatalf("client got %d bytes, want %d", n, total)
	}
}

// The outer channel's first error is every later write's error.
func TestJumpWriterReportsError(t *testing.T) {
	g := &gatedWriter{open: openGate(), failAt: 100 << 10}
	j := newJumpWriter(g)
	p := make([]byte, 32<<10)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = j.Write(p)
		if i%8 == 7 {
			j.flush(time.Minute)
		}
	}
	if err == nil || err.Error() != "outer channel closed" {
		t.Fatalf("writes after the outer channel failed: err %v", err)
	}
	if got := len(g.bytes()); got > 100<<10 {
		t.Fatalf("%d bytes written past the failure", got)
	}
}

// Closing waits for what is queued, but not forever for a client that stopped
// reading: then later writes fail.
func TestJumpWriterFlushGivesUp(t *testing.T) {
	g := &gatedWriter{open: make(chan struct{})}
	j := newJumpWriter(g)
	if _, err := j.Write(make([]byte, jumpInlineMax+1)); err != nil {
		t.Fatal(err)
	}
	if j.flush(50 * time.Millisecond) {
		t.Fatal("flush reported a drained queue while the client read nothing")
	}
	if _, err := j.Write([]byte("more")); !errors.Is(err, errJumpDrainTimeout) {
		t.Fatalf("write after a failed drain: %v", err)
	}
	close(g.open) // the stuck write ends (as closing the channel ends it)
}

// A keystroke's echo with nothing queued is written by the caller itself;
// one that comes while bulk data is queued waits its turn behind it.
func TestJumpWriterSmallWritesInOrder(t *testing.T) {
	g := &gatedWriter{open: make(chan struct{})}
	j := newJumpWriter(g)
	big := bytes.Repeat([]byte("b"), 32<<10)
	if _, err := j.Write(big); err != nil { // queued: the client reads nothing yet
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() { _, err := j.Write([]byte("k")); wrote <- err }()
	close(g.open)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !j.flush(time.Minute) {
		t.Fatal("queue did not drain")
	}
	if got := g.bytes(); !bytes.Equal(got, append(big, 'k')) {
		t.Fatalf("the echo overtook the queued data: got %d bytes ending %q", len(got), got[len(got)-1:])
	}
	// Nothing queued now: a small write goes out before Write returns.
	if _, err := j.Write([]byte("e")); err != nil {
		t.Fatal(err)
	}
	if got := g.bytes(); got[len(got)-1] != 'e' {
		t.Fatal("a small write with nothing queued was not written at once")
	}
}
