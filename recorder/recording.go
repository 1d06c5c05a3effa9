package recorder

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/recorder/cmdline"
)

// RecordingOptions configures Recordings.
type RecordingOptions struct {
	// MaxBytes ends a session whose stored recording (output and input
	// alike) grows past it; <= 0 is unlimited. With StreamFullBytes set it
	// applies to terminal sessions only.
	MaxBytes int64
	// StreamFullBytes: in a session without a terminal, once a stream
	// (stdout, stderr, stdin) has passed this many bytes the recording keeps
	// the stream's SHA-256, length and timing but no longer its bytes, and
	// the session goes on. <= 0 stores every byte (and MaxBytes applies).
	// Sessions with a terminal always store everything.
	StreamFullBytes int64
	// FlushInterval bounds the loss on a crash; zero means 1s.
	FlushInterval time.Duration
	// OnFlush, if set, is told the size and duration of every write of
	// buffered events (metrics); nil means nobody is told.
	OnFlush func(bytes int, took time.Duration)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// S3, if set, stores new recordings in an S3-compatible bucket; nil
	// keeps them in the directory. Recordings already in the directory
	// stay readable there.
	S3 *S3Options
	// Instance is the id (internal/instance) written as the owner of every
	// recording started here; recovery seals a recording only once its
	// owner's lease is gone.
	Instance string
}

// recSink is where a recording's bytes go while it is written: a local
// file (*os.File) or segment objects (*segmentWriter).
type recSink interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// Recordings stores encrypted session recordings in a directory.
type Recordings struct {
	dir  string
	db   *store.DB
	kr   *secrets.Keyring
	opts RecordingOptions
	log  *slog.Logger
	s3   *s3Store // nil: new recordings go to dir

	// stmts holds the per-session statements, prepared once (query → *sql.Stmt).
	stmts sync.Map

	// mu protects live and unsealed.
	mu   sync.Mutex
	live map[*Recording]struct{}
	// unsealed are recordings this instance claimed from a dead one but
	// could not seal (a database error): the next recovery pass retries
	// them, as no other instance will while this one is alive.
	unsealed map[string]bool
	quit     chan struct{}
	once     sync.Once
}

// SessionInfo describes the session being recorded.
type SessionInfo struct {
	SessionID, User, Target, Login string
	Start                          time.Time
	Cols, Rows                     int
	Term                           string
	Command                        string // exec command, "" for a shell
	// Interactive is true when a terminal was requested; only then are
	// commands reconstructed from the screen.
	Interactive bool
	// StdinShell is true for a shell without a terminal (a script on
	// stdin, e.g. "ssh host bash < script"); its stdin lines are listed as
	// commands with source "stdin" when the recording is sealed.
	StdinShell bool
	// OnCommand receives each command found in the session (may be nil).
	OnCommand func(Command)
}

// Command is one command seen in a session.
type Command struct {
	Time   time.Time
	Offset time.Duration // from the start of the recording
	Source string        // "exec" (exact), "screen" (reconstructed) or "stdin" (a script's lines)
	Text   string
}

// Summary describes a sealed recording.
type Summary struct {
	ID       string
	SHA256   string
	Bytes    int64
	Complete bool
	Reason   string
	Commands []Command
	// Streams (sessions without a terminal) by name: stdout, stderr, stdin.
	Streams map[string]StreamSummary
}

// ErrQuota is the failure cause when a recording exceeds MaxBytes.
var ErrQuota = errors.New("the session exceeded its recording size quota")

// OpenRecordings opens (creating 0700) dir and checks it is writable.
func OpenRecordings(dir string, db *store.DB, kr *secrets.Keyring, opts RecordingOptions) (*Recordings, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("recorder: recordings directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	r := &Recordings{dir: dir, db: db, kr: kr, opts: opts, log: opts.Logger, live: map[*Recording]struct{}{}, quit: make(chan struct{})}
	if opts.S3 != nil {
		if r.s3, err = openS3Store(context.Background(), *opts.S3, opts.Now); err != nil {
			return nil, err
		}
	}
	go r.flusher()
	return r, nil
}

// Close stops the background flusher. Live recordings are not sealed (their
// Close still seals them); Start refuses at once from now on.
func (r *Recordings) Close() { r.once.Do(func() { close(r.quit) }) }

// ErrRecordingsClosed is returned by Start after Close.
var ErrRecordingsClosed = errors.New("recorder: recordings are closed")

// flusher writes every live recording's buffered events each FlushInterval,
// so a crash loses at most that much.
func (r *Recordings) flusher() {
	t := time.NewTicker(r.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.mu.Lock()
			live := make([]*Recording, 0, len(r.live))
			for rec := range r.live {
				live = append(live, rec)
			}
			r.mu.Unlock()
			r.flushAll(live)
		case <-r.quit:
			return
		}
	}
}

// Recording is one session's recording being written. Its methods are safe
// for concurrent use.
type Recording struct {
	r     *Recordings
	id    string
	info  SessionInfo
	start time.Time

	// mu protects the following.
	mu sync.Mutex
	f  recSink
	// key is the recording's data key. The AES-GCM state is made from it
	// for each record sealed rather than kept: ~0.7 KiB less per idle
	// session, for a key expansion per record (records are batches of up
	// to 256 KiB, or what a flush interval gathered: ~1 µs in 3 ms of
	// sealing at bulk speed).
	key [32]byte
	n   uint64 // records written
	buf []byte // pending 'E' record payload (starts with the kind byte); nil when none, from recBufs
	// spans are the raw-stream bytes in buf and hbuf not yet hashed: the
	// writer hashes them with the batch, off the relay's path. hbuf holds
	// copies of bytes a full stream no longer stores, only to be hashed (a
	// copy costs the relay far less than SHA-256); nil when none.
	spans []hashSpan
	hbuf  []byte
	// batches holds full batches of events waiting to be sealed and written;
	// writing is set while someone (a writer goroutine started by
	// flushIfFull, the flusher or Close) owns f, n and the batches it took.
	// cond (on mu) is signalled whenever a batch is done or writing ends.
	batches []recBatch
	writing bool
	cond    sync.Cond
	// fileHash is the SHA-256 of every byte written to a local file so
	// far, kept by whoever owns the sink; nil for objects, or once a write
	// failed (the seal then reads the file back).
	fileHash hash.Hash
	// queued and written count batches ever queued and ever done (written,
	// or only hashed after a failure): the flusher waits for its own.
	queued, written uint64
	bytes           int64
	err             error
	closed          bool
	failed          chan struct{}
	subs            map[chan []byte]struct{}
	onFail          []func()
	lastT           uint64
	// streams are the raw streams of a session without a terminal (nil
	// for a terminal session), indexed by event type.
	streams map[byte]*rawStream
	// lines reads commands off the screen as they run (terminal sessions).
	lines *cmdline.Tracker
	liveCmds
}

// rawStream tracks one stream of a session without a terminal.
type rawStream struct {
	bytes, stored int64
	hash          hash.Hash
}

// recBatch is a full 'E' record payload waiting to be written, with the
// raw-stream bytes in it that still need hashing.
type recBatch struct {
	buf, hbuf []byte
	spans     []hashSpan
}

// hashSpan is buf[off:end] (hbuf[off:end] if side) of a batch, to be
// written to h.
type hashSpan struct {
	h        hash.Hash
	off, end int
	side     bool
}

// maxQueued bounds the batches waiting for the writer: a session that
// produces faster than its recording is written stalls (the relay waits in
// flushIfFull), it never drops bytes. With the batch being written and the
// one being filled, a busy session holds at most flushSize × (maxQueued+2).
const maxQueued = 1

// streamNames name the raw streams by event type.
var streamNames = map[byte]string{'o': "stdout", 'e': "stderr", 'i': "stdin"}

// StreamSummary describes one raw stream of a session without a terminal.
type StreamSummary struct {
	Bytes  int64  `json:"bytes"`  // all bytes that passed
	Stored int64  `json:"stored"` // bytes kept in the recording (a prefix)
	SHA256 string `json:"sha256"` // of all bytes that passed
}

// Full reports whether bytes passed that the recording does not hold.
func (s StreamSummary) Full() bool { return s.Stored < s.Bytes }

// flushSize is the buffered payload size that triggers an immediate write.
const flushSize = 256 << 10

func newRecID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// recHeaderJSON is the asciicast v2 header stored in record 0.
type recHeaderJSON struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Session   string            `json:"gatehouse_session"`
	User      string            `json:"gatehouse_user"`
	Target    string            `json:"gatehouse_target"`
	Login     string            `json:"gatehouse_login"`
	Command   string            `json:"command,omitempty"`
}

// Start creates the recording: the file with its header record and the
// database row exist before Start returns.
func (r *Recordings) Start(info SessionInfo) (*Recording, error) {
	select {
	case <-r.quit:
		return nil, ErrRecordingsClosed // nothing would flush it
	default:
	}
	if info.Cols <= 0 || info.Rows <= 0 {
		info.Cols, info.Rows = 80, 24
	}
	if info.Start.IsZero() {
		info.Start = r.opts.Now()
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	id := newRecID()
	wrapped, err := r.kr.Seal("recording:"+id, key)
	if err != nil {
		return nil, err
	}
	f, file, err := r.create(id)
	if err != nil {
		return nil, err
	}
	rec := &Recording{r: r, id: id, info: info, start: info.Start, f: f, key: [32]byte(key), failed: make(chan struct{})}
	rec.cond.L = &rec.mu
	if _, ok := f.(*os.File); ok {
		rec.fileHash = sha256.New()
	}
	if info.Interactive {
		rec.lines = cmdline.New(info.Cols, info.Rows, rec.onLine)
	} else {
		rec.streams = map[byte]*rawStream{}
		for typ := range streamNames {
			rec.streams[typ] = &rawStream{hash: sha256.New()}
		}
	}
	if err := rec.writeHead(); err != nil {
		r.discard(f)
		return nil, err
	}
	// The row is written whatever happens to the session that asked for it:
	// no caller's context cancels it (as for the seal and command rows).
	_, err = r.exec(context.Background(), `INSERT INTO recordings(id, session_id, user_name, target, login, file, wrapped_key, started,
		cols, rows, interactive, command, instance_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, info.SessionID, info.User, info.Target, info.Login, file, wrapped, info.Start.UnixNano(), info.Cols, info.Rows,
		info.Interactive, info.Command, r.opts.Instance)
	if err != nil {
		r.discard(f)
		return nil, fmt.Errorf("recorder: recording row: %w", err)
	}
	r.mu.Lock()
	r.live[rec] = struct{}{}
	r.mu.Unlock()
	return rec, nil
}

func (rec *Recording) writeHead() error {
	h := recHeaderJSON{Version: 2, Width: rec.info.Cols, Height: rec.info.Rows, Timestamp: rec.start.Unix(),
		Session: rec.info.SessionID, User: rec.info.User, Target: rec.info.Target, Login: rec.info.Login,
		Command: rec.info.Command, Title: rec.info.User + " → " + rec.info.Login + "@" + rec.info.Target}
	if rec.info.Term != "" {
		h.Env = map[string]string{"TERM": rec.info.Term}
	}
	hb, _ := json.Marshal(h)
	if _, err := rec.f.Write([]byte(recMagic)); err != nil {
		return fmt.Errorf("recorder: write recording: %w", err)
	}
	if rec.fileHash != nil {
		rec.fileHash.Write([]byte(recMagic))
	}
	return rec.writeRecord(append([]byte{recHeader}, hb...))
}

// ID is the recording id.
func (rec *Recording) ID() string { return rec.id }

// recBufs holds the event and sealing buffers of recordings between
// flushes: a recording holds none while its session is idle (thousands of
// idle sessions would otherwise keep what their last burst grew), and a
// busy one takes back a buffer already grown to a flush's size.
var recBufs = sync.Pool{New: func() any { return new([]byte) }}

// getRecBuf returns an empty buffer from the pool.
func getRecBuf() []byte { return (*recBufs.Get().(*[]byte))[:0] }

// putRecBuf returns b to the pool unless it is oversized.
func putRecBuf(b []byte) {
	if b != nil && cap(b) <= 2*flushSize+recordOverhead {
		b = b[:0]
		recBufs.Put(&b)
	}
}

// recordOverhead is what sealing adds to a record: its length and the
// AEAD tag.
const recordOverhead = 4 + 16

// writeRecord seals and writes one record. Caller holds mu and no writer
// is active (Start, or Close once the queue is drained).
func (rec *Recording) writeRecord(pt []byte) error {
	if err := rec.sealWrite(pt, rec.n); err != nil {
		return err
	}
	rec.n++
	return nil
}

// sealWrite seals pt as record n and writes it. The caller owns the sink:
// it holds mu with no writer active, or it is the writer. The sealing
// buffer goes back to the pool once written (the sink does not keep it: a
// file write, or an object PUT that has been answered).
func (rec *Recording) sealWrite(pt []byte, n uint64) error {
	aead, err := newAEAD(rec.key[:])
	if err != nil {
		return err
	}
	out := append(getRecBuf(), 0, 0, 0, 0)
	out = aead.Seal(out, recNonce(n), pt, []byte(rec.id))
	binary.BigEndian.PutUint32(out[:4], uint32(len(out)-4))
	if _, err := rec.f.Write(out); err != nil {
		// Not pooled: after a failed object PUT the HTTP transport may
		// still be reading it.
		rec.fileHash = nil // part of out may be in the file
		return fmt.Errorf("recorder: write recording: %w", err)
	}
	if rec.fileHash != nil {
		rec.fileHash.Write(out)
	}
	putRecBuf(out)
	return nil
}

func (rec *Recording) since() uint64 {
	t := uint64(rec.r.opts.Now().Sub(rec.start).Microseconds())
	if t < rec.lastT { // monotonic in the file even if the clock steps back
		t = rec.lastT
	}
	rec.lastT = t
	return t
}

// add appends an event; it writes the record when the buffer is full.
func (rec *Recording) add(typ byte, data []byte) error { return rec.addEvent(typ, data, true) }

// Notice records output the gateway itself wrote to the user's terminal
// (a refused line's reason): replayed like output, but not read for commands.
func (rec *Recording) Notice(p []byte) error { return rec.addEvent('o', p, false) }

// addEvent appends an event, and gives terminal events to the command-line
// tracker when track is set.
func (rec *Recording) addEvent(typ byte, data []byte, track bool) error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.err != nil || rec.closed {
		return rec.err
	}
	t := rec.since()
	rs := rec.streams[typ]
	if rs != nil {
		rs.bytes += int64(len(data))
		if full := rec.r.opts.StreamFullBytes; full > 0 && rs.stored >= full {
			// Full: keep the timing and length, not the bytes. The writer
			// hashes a copy, in order with the stream's stored bytes.
			if rec.hbuf == nil {
				rec.hbuf = getRecBuf()
			}
			rec.hbuf = append(rec.hbuf, data...)
			rec.spans = append(rec.spans, hashSpan{rs.hash, len(rec.hbuf) - len(data), len(rec.hbuf), true})
			rec.buf = appendEvent(rec.startBuf(), recElided, t, binary.AppendUvarint([]byte{typ}, uint64(len(data))))
			return rec.flushIfFull()
		}
		rs.stored += int64(len(data))
	}
	if typ == 'o' || typ == 'e' || typ == 'i' {
		// Uploads count the same as downloads. Without a terminal, full
		// streams bound what is stored, so the quota ends only terminal
		// sessions (or everything when streams are never full).
		rec.bytes += int64(len(data))
		quota := rec.streams == nil || rec.r.opts.StreamFullBytes <= 0
		if max := rec.r.opts.MaxBytes; quota && max > 0 && rec.bytes > max {
			// The full batches queued before the quota was passed are
			// written, as they were when the relay wrote them itself; the
			// events after them are not (the recording ends here).
			rec.drainLocked()
			rec.fail(ErrQuota)
			if rs != nil {
				// The stream's hash covers every byte that passed: the
				// unwritten events', then these.
				rec.enqueueLocked()
				rec.drainLocked()
				rs.hash.Write(data)
			}
			return ErrQuota
		}
	}
	rec.buf = appendEvent(rec.startBuf(), typ, t, data)
	if rs != nil {
		rec.spans = append(rec.spans, hashSpan{rs.hash, len(rec.buf) - len(data), len(rec.buf), false})
	}
	if rec.lines != nil && track {
		feedTracker(rec.lines, typ, t, data)
	}
	if len(rec.subs) > 0 && typ != 'i' {
		rec.publish(outputType(typ), t, data)
	}
	return rec.flushIfFull()
}

// startBuf returns the pending record's payload, started with its kind
// byte if empty. Caller holds mu.
func (rec *Recording) startBuf() []byte {
	if len(rec.buf) == 0 {
		if rec.buf == nil {
			rec.buf = getRecBuf()
		}
		rec.buf = append(rec.buf, recEvents)
	}
	return rec.buf
}

// flushIfFull hands the buffered events to a writer goroutine once they
// reach flushSize, so the session's relay does not seal, hash and write
// them itself. The goroutine exists only while there are batches to write.
// When maxQueued batches are already waiting, the caller waits for the
// writer (backpressure: the session stalls, nothing is dropped). Caller
// holds mu.
func (rec *Recording) flushIfFull() error {
	if len(rec.buf) < flushSize && len(rec.hbuf) < flushSize {
		return nil
	}
	rec.enqueueLocked()
	if !rec.writing {
		rec.writing = true
		go rec.writeLoop()
	}
	for len(rec.batches) > maxQueued && rec.err == nil {
		rec.cond.Wait()
	}
	return rec.err
}

// writeLoop is the writer goroutine: it writes batches until none is left.
func (rec *Recording) writeLoop() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.writeQueuedLocked(0)
	rec.writing = false
	rec.cond.Broadcast()
}

// enqueueLocked moves the buffered events to the write queue. Caller holds
// mu.
func (rec *Recording) enqueueLocked() {
	if len(rec.buf) == 0 && len(rec.hbuf) == 0 {
		return
	}
	rec.batches = append(rec.batches, recBatch{rec.buf, rec.hbuf, rec.spans})
	rec.buf, rec.hbuf, rec.spans = nil, nil, nil
	rec.queued++
}

// drainLocked returns once every queued batch is written: by the writer
// goroutine if one runs, else by the caller. Caller holds mu.
func (rec *Recording) drainLocked() {
	for rec.writing {
		rec.cond.Wait()
	}
	if len(rec.batches) == 0 {
		return
	}
	rec.writing = true
	rec.writeQueuedLocked(0)
	rec.writing = false
	rec.cond.Broadcast()
}

// writeQueuedLocked hashes, seals and writes the queued batches in order,
// with mu released while it works (the session keeps adding events), until
// none is left or, with until > 0, batch number until is done. After a
// failure the remaining batches are hashed but not written: the stream
// summaries still cover every byte that passed. Caller holds mu and set
// writing.
func (rec *Recording) writeQueuedLocked(until uint64) {
	for len(rec.batches) > 0 && (until == 0 || rec.written < until) {
		b := rec.batches[0]
		rec.batches[0] = recBatch{}
		rec.batches = rec.batches[1:]
		write, n := rec.err == nil, rec.n
		rec.mu.Unlock()
		for _, sp := range b.spans {
			if sp.side {
				sp.h.Write(b.hbuf[sp.off:sp.end])
			} else {
				sp.h.Write(b.buf[sp.off:sp.end])
			}
		}
		var err error
		write = write && len(b.buf) > 0
		if write {
			start := time.Now()
			if err = rec.sealWrite(b.buf, n); err == nil {
				if fn := rec.r.opts.OnFlush; fn != nil {
					fn(len(b.buf), time.Since(start))
				}
			}
		}
		rec.mu.Lock()
		if write {
			if err == nil {
				rec.n++
			} else {
				rec.fail(err)
			}
		}
		putRecBuf(b.buf)
		putRecBuf(b.hbuf)
		rec.written++
		rec.cond.Broadcast()
	}
	if len(rec.batches) == 0 {
		rec.batches = nil
	}
}

// flushLocked writes everything buffered and queued, and waits for a
// writer still busy with the last batch, before returning. Caller holds mu
// (released while the batches are written).
func (rec *Recording) flushLocked() {
	for len(rec.buf) > 0 || len(rec.hbuf) > 0 || len(rec.batches) > 0 || rec.writing {
		rec.enqueueLocked()
		rec.drainLocked()
	}
}

// flushIfDirty writes the buffered events (the flusher, every
// FlushInterval) and returns once they are written. It writes only up to
// its own batch: a busy session's later batches are left to a writer
// goroutine, so one session cannot hold the flusher (and every other
// session's bound on crash loss).
func (rec *Recording) flushIfDirty() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.closed {
		return
	}
	rec.enqueueLocked()
	mine := rec.queued
	if !rec.writing && rec.written < mine {
		rec.writing = true
		rec.writeQueuedLocked(mine)
		rec.writing = false
		if len(rec.batches) > 0 {
			rec.writing = true
			go rec.writeLoop()
		}
		rec.cond.Broadcast()
	}
	for rec.written < mine {
		rec.cond.Wait()
	}
}

// fail records the first write failure and signals it. Caller holds mu.
func (rec *Recording) fail(err error) {
	if rec.err == nil {
		rec.err = err
		close(rec.failed)
		for _, fn := range rec.onFail {
			go fn()
		}
		rec.onFail = nil
		rec.r.log.Error("recording failed", "recording", rec.id, "session", rec.info.SessionID, "err", err)
	}
}

// Output records terminal output (stdout; with a terminal, everything the
// user saw).
func (rec *Recording) Output(p []byte) error { return rec.add('o', p) }

// Stderr records the session's stderr stream (shown as output in asciicast).
func (rec *Recording) Stderr(p []byte) error { return rec.add('e', p) }

// Input records keystrokes (a separate stream, shown only to roles allowed
// to see input).
func (rec *Recording) Input(p []byte) error { return rec.add('i', p) }

// Resize records a terminal size change.
func (rec *Recording) Resize(cols, rows int) error {
	return rec.add('r', []byte(fmt.Sprintf("%dx%d", cols, rows)))
}

// Marker records a labelled marker.
func (rec *Recording) Marker(label string) error { return rec.add('m', []byte(label)) }

// Exec records the exact command of an exec request.
func (rec *Recording) Exec(cmd string) {
	rec.add('m', []byte(cmd))
	rec.r.saveCommands(rec.id, []Command{{Time: rec.start, Source: "exec", Text: cmd}})
}

// Failed is closed when writing failed (disk full, quota); Err says why.
func (rec *Recording) Failed() <-chan struct{} { return rec.failed }

// OnFail calls fn in its own goroutine when writing fails (at once if it
// already has), so a session can react without a goroutine of its own.
func (rec *Recording) OnFail(fn func()) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.err != nil {
		go fn()
		return
	}
	rec.onFail = append(rec.onFail, fn)
}

// Err is why the recording failed, or nil.
func (rec *Recording) Err() error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.err
}

// recFinalJSON is the seal record.
type recFinalJSON struct {
	Reason   string                   `json:"reason"`
	Complete bool                     `json:"complete"`
	End      int64                    `json:"end"`
	Streams  map[string]StreamSummary `json:"streams,omitempty"`
}

// Close seals the recording: the last events, a final record, fsync, the
// database row, and (for interactive sessions) the commands reconstructed
// from the screen.
func (rec *Recording) Close(reason string) (Summary, error) {
	rec.mu.Lock()
	if rec.closed {
		rec.mu.Unlock()
		return Summary{}, errors.New("recorder: recording already closed")
	}
	// Everything queued or buffered is hashed, sealed and written before
	// the final record; events added meanwhile are written too.
	rec.flushLocked()
	complete := rec.err == nil
	if !complete {
		reason = fmt.Sprintf("%s (recording incomplete: %v)", reason, rec.err)
	}
	streams := rec.streamSummaries()
	fb, _ := json.Marshal(recFinalJSON{Reason: reason, Complete: complete, End: rec.r.opts.Now().UnixNano(), Streams: streams})
	werr := rec.writeRecord(append([]byte{recFinal}, fb...))
	if werr == nil {
		werr = rec.f.Sync()
	}
	rec.f.Close()
	rec.closed = true
	if rec.lines != nil {
		rec.lines.Close()
		rec.lines = nil
	}
	for ch := range rec.subs {
		close(ch)
	}
	putRecBuf(rec.buf)
	rec.subs, rec.buf = nil, nil
	bytes := rec.bytes
	rec.mu.Unlock()
	// The file's SHA-256 was taken as it was written, by the writer
	// goroutine (off the relay's path: on it, it cost 9% of the relay's
	// CPU); after a failed write the file is read back instead.
	sum, herr := rec.sum()
	if werr == nil {
		werr = herr
	}
	rec.r.mu.Lock()
	delete(rec.r.live, rec)
	rec.r.mu.Unlock()
	if werr != nil {
		complete = false
		reason = fmt.Sprintf("%s (seal failed: %v)", reason, werr)
	}
	s := Summary{ID: rec.id, SHA256: sum, Bytes: bytes, Complete: complete, Reason: reason, Streams: streams}
	// A final record that could not be written (the store was down) leaves
	// the seal pending: recovery writes it once the store is back.
	if err := rec.r.finishRow(context.Background(), rec.id, s, werr != nil); err != nil {
		return s, err
	}
	switch {
	case rec.info.Interactive:
		s.Commands = rec.waitCommands()
	case rec.info.StdinShell:
		s.Commands = rec.r.stdinCommands(rec.id, rec.info.OnCommand)
	}
	return s, werr
}

// streamSummaries describes the raw streams that carried data. Caller
// holds mu.
func (rec *Recording) streamSummaries() map[string]StreamSummary {
	var out map[string]StreamSummary
	for typ, rs := range rec.streams {
		if rs.bytes == 0 {
			continue
		}
		if out == nil {
			out = map[string]StreamSummary{}
		}
		out[streamNames[typ]] = StreamSummary{Bytes: rs.bytes, Stored: rs.stored, SHA256: hex.EncodeToString(rs.hash.Sum(nil))}
	}
	return out
}

// finishRow marks the recording ended; sealPending says its final record
// is not written yet.
// A row another instance has claimed (this instance's lease ran out and it
// sealed the recording) is left as that instance wrote it.
func (r *Recordings) finishRow(ctx context.Context, id string, s Summary, sealPending bool) error {
	res, err := r.exec(ctx, `UPDATE recordings SET ended = ?, complete = ?, reason = ?, sha256 = ?, bytes = ?, seal_pending = ?
		WHERE id = ? AND instance_id = ?`, r.opts.Now().UnixNano(), s.Complete, s.Reason, s.SHA256, s.Bytes, sealPending, id,
		r.opts.Instance)
	if err != nil {
		return fmt.Errorf("recorder: seal row: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("recorder: seal row: recording %s was claimed and sealed by another instance", id)
	}
	return nil
}

// prepared returns query prepared once for these Recordings, or nil if it
// could not be prepared (the caller then runs the text). database/sql keeps
// it prepared on each pooled connection that has run it: SQLite otherwise
// parses every per-session statement anew, which was 12% of the gateway's
// CPU per new session (docs/performance.md). The statements live as long
// as the database.
func (r *Recordings) prepared(ctx context.Context, query string) *sql.Stmt {
	if st, ok := r.stmts.Load(query); ok {
		return st.(*sql.Stmt)
	}
	st, err := r.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if prev, loaded := r.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt)
	}
	return st
}

// exec runs query with args through its prepared statement.
func (r *Recordings) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := r.prepared(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return r.db.ExecContext(ctx, query, args...)
}

// txStmt is query's prepared statement within tx.
func (r *Recordings) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st := r.prepared(ctx, query); st != nil {
		return tx.StmtContext(ctx, st), nil
	}
	return tx.PrepareContext(ctx, query)
}

func (r *Recordings) saveCommands(id string, cmds []Command) {
	if len(cmds) == 0 {
		return
	}
	ctx := context.Background() // a session's end does not cancel saving its commands
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		r.log.Error("save commands", "recording", id, "err", err)
		return
	}
	defer tx.Rollback()
	var seq int
	last, err := r.txStmt(ctx, tx, `SELECT COALESCE(MAX(seq), 0) FROM recording_commands WHERE recording_id = ?`)
	if err == nil {
		last.QueryRowContext(ctx, id).Scan(&seq)
	}
	insert, err := r.txStmt(ctx, tx, `INSERT INTO recording_commands(recording_id, seq, offset_us, time, source, text) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		r.log.Error("save commands", "recording", id, "err", err)
		return
	}
	for _, c := range cmds {
		seq++
		if _, err := insert.ExecContext(ctx, id, seq, c.Offset.Microseconds(), c.Time.UnixNano(), c.Source, c.Text); err != nil {
			r.log.Error("save commands", "recording", id, "err", err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		r.log.Error("save commands", "recording", id, "err", err)
	}
}

// Subscribe streams the recording's asciicast event lines as they are
// written (for the live view). A slow subscriber misses lines rather than
// slowing the session. cancel must be called when done.
func (rec *Recording) Subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 256)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.closed {
		close(ch)
		return ch, func() {}
	}
	if rec.subs == nil {
		rec.subs = map[chan []byte]struct{}{}
	}
	rec.subs[ch] = struct{}{}
	return ch, func() {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if _, ok := rec.subs[ch]; ok {
			delete(rec.subs, ch)
			close(ch)
		}
	}
}

func (rec *Recording) publish(typ byte, t uint64, data []byte) {
	line := castLine(nil, typ, t, data)
	for ch := range rec.subs {
		select {
		case ch <- line:
		default: // never block the session
		}
	}
}

// Live returns the live recording of a session, if one is being written.
func (r *Recordings) Live(sessionID string) *Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	for rec := range r.live {
		if rec.info.SessionID == sessionID {
			return rec
		}
	}
	return nil
}

// create opens a new recording's sink: a file in the directory, or segment
// objects. file is what the recordings row stores to find it again.
func (r *Recordings) create(id string) (recSink, string, error) {
	if r.s3 != nil {
		return newSegmentWriter(r.s3, id, 0), r.s3.base + id + "/", nil
	}
	file := id + ".ghrec"
	f, err := os.OpenFile(filepath.Join(r.dir, file), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("recorder: create recording: %w", err)
	}
	return f, file, nil
}

// discard drops a recording that never got its row: a local file is
// removed; objects stay (Gatehouse never deletes from the object store)
// and, without a row, belong to no session.
func (r *Recordings) discard(f recSink) {
	f.Close()
	if lf, ok := f.(*os.File); ok {
		os.Remove(lf.Name())
	}
}

// sum is the SHA-256 of the sealed recording.
func (rec *Recording) sum() (string, error) {
	if sw, ok := rec.f.(*segmentWriter); ok {
		return sw.sum(), nil
	}
	if rec.fileHash != nil {
		return hex.EncodeToString(rec.fileHash.Sum(nil)), nil
	}
	return fileSHA256(filepath.Join(rec.r.dir, rec.id+".ghrec"))
}

// s3FlushConcurrency bounds the segment PUTs the flusher has in flight:
// one slow PUT must not hold back every other session's flush (the bound
// on what a crash loses).
const s3FlushConcurrency = 32

// flushAll writes each recording's buffered events: one after the other to
// local files, up to s3FlushConcurrency at once to object storage. It
// returns when all are written.
func (r *Recordings) flushAll(live []*Recording) {
	if r.s3 == nil {
		for _, rec := range live {
			rec.flushIfDirty()
		}
		return
	}
	sem := make(chan struct{}, s3FlushConcurrency)
	var wg sync.WaitGroup
	for _, rec := range live {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			rec.flushIfDirty()
		}()
	}
	wg.Wait()
}
