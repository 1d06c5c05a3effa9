package gateway

import (
	"errors"
	"io"
	"sync"
	"time"
)

// jumpWriter hands the writes of a ProxyJump inner connection to a goroutine
// that writes them to the outer channel, so that the two encryptions of every
// byte the gateway sends (the inner connection's, then the outer channel's)
// run on two cores instead of one after the other in the relay's goroutine.
//
// Writes are copied and queued in order, up to jumpQueueMax bytes; a writer
// that would pass it waits (backpressure: a client that stops reading stops
// the session's output as it did before). The goroutine runs only while
// something is queued, so an idle connection holds none. The first error of
// the outer channel is returned by every later Write, and Close waits for the
// queue to drain (at most jumpDrainWait) before it closes the channel: the
// inner connection's last messages (exit-status, close, disconnect) are not
// dropped.
type jumpWriter struct {
	w io.Writer

	mu      sync.Mutex
	cond    sync.Cond
	queue   [][]byte
	queued  int
	running bool
	err     error
}

const (
	// jumpQueueMax is how much a ProxyJump connection may have queued for
	// the outer channel: a few full packets, enough to keep both stages busy.
	jumpQueueMax = 256 << 10
	// jumpDrainWait bounds how long Close waits for queued bytes to reach a
	// client that stopped reading.
	jumpDrainWait = 10 * time.Second
	// jumpInlineMax is the largest write sent from the writer's goroutine
	// when nothing is queued: interactive traffic, not bulk.
	jumpInlineMax = 4 << 10
	// jumpBufSize is the size of a pooled queue buffer: an inner packet of
	// jumpChunk bytes with its framing fits.
	jumpBufSize = 36 << 10
)

// errJumpDrainTimeout ends a ProxyJump connection whose client stopped
// reading while it was being closed.
var errJumpDrainTimeout = errors.New("gatehouse: the client stopped reading")

// jumpBufs holds the queue's packet copies (an inner packet is at most
// jumpChunk plus its framing, so most fit one buffer).
var jumpBufs = sync.Pool{New: func() any { b := make([]byte, 0, jumpBufSize); return &b }}

func newJumpWriter(w io.Writer) *jumpWriter {
	j := &jumpWriter{w: w}
	j.cond.L = &j.mu
	return j
}

// Write queues a copy of p for the outer channel. A small write with nothing
// queued (a keystroke's echo) is written at once instead: a hand-off to the
// goroutine would only add to its latency.
func (j *jumpWriter) Write(p []byte) (int, error) {
	j.mu.Lock()
	if !j.running && j.err == nil && len(p) <= jumpInlineMax {
		j.running = true // later writes queue behind this one
		j.mu.Unlock()
		_, err := j.w.Write(p)
		j.mu.Lock()
		defer j.mu.Unlock()
		if err != nil && j.err == nil {
			j.err = err
		}
		if len(j.queue) > 0 && j.err == nil {
			go j.drain()
		} else {
			j.queue, j.queued = nil, 0
			j.running = false
		}
		j.cond.Broadcast()
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	defer j.mu.Unlock()
	for j.err == nil && j.queued > 0 && j.queued+len(p) > jumpQueueMax {
		j.cond.Wait()
	}
	if j.err != nil {
		return 0, j.err
	}
	var b []byte
	if len(p) <= jumpBufSize {
		b = append((*jumpBufs.Get().(*[]byte))[:0], p...)
	} else {
		b = append([]byte(nil), p...)
	}
	j.queue = append(j.queue, b)
	j.queued += len(b)
	if !j.running {
		j.running = true
		go j.drain()
	}
	return len(p), nil
}

// drain writes the queue out in order and ends when it is empty.
func (j *jumpWriter) drain() {
	j.mu.Lock()
	for len(j.queue) > 0 && j.err == nil {
		b := j.queue[0]
		j.queue[0] = nil
		j.queue = j.queue[1:]
		j.mu.Unlock()
		_, err := j.w.Write(b)
		j.mu.Lock()
		j.queued -= len(b)
		if cap(b) == jumpBufSize {
			jumpBufs.Put(&b)
		}
		if err != nil && j.err == nil {
			j.err = err
		}
		j.cond.Broadcast()
	}
	if j.err != nil {
		j.queue, j.queued = nil, 0
	}
	if len(j.queue) == 0 {
		j.queue = nil // do not keep the grown slice on an idle connection
	}
	j.running = false
	j.cond.Broadcast()
	j.mu.Unlock()
}

// flush waits until everything queued was written (or failed), at most d.
// It reports whether the queue drained.
func (j *jumpWriter) flush(d time.Duration) bool {
	t := time.AfterFunc(d, func() {
		j.mu.Lock()
		if j.err == nil {
			j.err = errJumpDrainTimeout
		}
		j.cond.Broadcast()
		j.mu.Unlock()
	})
	defer t.Stop()
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.running && j.err != errJumpDrainTimeout {
		j.cond.Wait()
	}
	return !j.running
}
