package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Options configures a Log. Zero values take the defaults named.
type Options struct {
	// CheckpointInterval between signed checkpoints; zero means 5m, a
	// negative value disables periodic checkpoints (Close still writes one).
	CheckpointInterval time.Duration
	// CheckpointFile receives a copy of every checkpoint (appended).
	CheckpointFile string
	// CheckpointURL receives every checkpoint by HTTP POST.
	CheckpointURL string
	// Stream copies events as JSON lines: "stdout", "syslog", "file:/path".
	Stream string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Log is the tamper-evident audit log. One goroutine owns the chain
// head and writes batches of concurrent appends in one transaction, so the
// chain never forks; it reads the head inside that (immediate) transaction,
// so two processes (the server and an admin CLI) cannot fork it either.
//
// Lifecycle: Open, Append from any goroutine, Close (which writes a
// final checkpoint).
type Log struct {
	db     *store.DB
	opts   Options
	log    *slog.Logger
	keys   *keyState
	stream *auditStream

	reqs      chan *appendReq
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// sending is held (read) by each Append while it queues its request and
	// (write) by Close while it marks the log closed: so every request queued
	// is queued before the writer's final drain, and none after it.
	sending sync.RWMutex
	closed  bool
}

type appendReq struct {
	ev   Event
	done chan error
}

// Open opens the log. On first use of an empty log it creates the
// signing key; a log written by an earlier version (one key, no signed head)
// is verified against its checkpoints and adopted. It refuses to open a log
// that no longer matches its signed head, and writes a checkpoint when the
// newest one does not cover every event (after a crash).
func Open(db *store.DB, sec *secrets.Store, opts Options) (*Log, error) {
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx := context.Background()
	f, origin, err := ensureKeyFile(ctx, db.DB, sec, opts.Now())
	if err != nil {
		return nil, err
	}
	keys := &keyState{sec: sec}
	if err := keys.set(f, nil); err != nil {
		return nil, err
	}
	stream, err := openAuditStream(opts.Stream)
	if err != nil {
		return nil, err
	}
	l := &Log{db: db, opts: opts, log: opts.Logger, keys: keys, stream: stream,
		reqs: make(chan *appendReq, 1024), quit: make(chan struct{}), done: make(chan struct{})}
	switch origin {
	case keyAdopted:
		err = l.adoptLegacy(ctx, f)
	case keyCreated:
		err = l.signFirstHead(ctx) // the genesis head: from now on a missing head is a deletion
	}
	if err != nil {
		stream.close()
		return nil, err
	}
	if err := l.checkStored(ctx, origin); err != nil {
		stream.close()
		return nil, err
	}
	if err := l.checkpointIfBehind(ctx); err != nil {
		stream.close()
		return nil, err
	}
	go l.run()
	return l, nil
}

// checkStored checks the stored log against its signed head before this
// writer signs anything (so a changed log is refused at start, not at the
// first session) and keeps the head and its frontier for the appends.
func (l *Log) checkStored(ctx context.Context, origin keyOrigin) error {
	k := l.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer tx.Rollback()
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM audit_events`).Scan(&last); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	h, front, err := k.checkHead(ctx, tx, last, &treeReader{ctx: ctx, tx: tx}, true)
	if err != nil {
		return err
	}
	if h.Note == nil && origin == keyExisting {
		// A writer signs a head as soon as it creates the key.
		return fmt.Errorf("%w: the signed head is missing although the signing key exists: the log was emptied or its head deleted", ErrTampered)
	}
	if h.Note != nil {
		k.head, k.front = h, front
	}
	return nil
}

// VerifierKey is the public key text an auditor needs to check checkpoints
// and exports (golang.org/x/mod/sumdb/note verifier key).
func (l *Log) VerifierKey() string {
	l.keys.mu.Lock()
	defer l.keys.mu.Unlock()
	return l.keys.keys[0].Verifier
}

// Keys returns the public halves of every audit key, the active one first.
func (l *Log) Keys() Keys {
	l.keys.mu.Lock()
	defer l.keys.mu.Unlock()
	return append(Keys(nil), l.keys.keys...)
}

// ErrClosed is returned by Append after Close, at once.
var ErrClosed = errors.New("audit: log is closed")

// Append writes ev and returns once it is durably committed. Callers fail
// closed on error. After Close it returns ErrClosed at once; an Append that
// races Close either is written (nil) or gets ErrClosed, and never waits
// for a writer that has stopped.
func (l *Log) Append(ctx context.Context, ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = l.opts.Now()
	}
	ev.Time = ev.Time.UTC()
	sanitize(&ev)
	if _, err := CanonicalDetails(ev.Details); err != nil {
		return err
	}
	r := &appendReq{ev: ev, done: make(chan error, 1)}
	if err := l.enqueue(ctx, r); err != nil {
		return err
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// The event may still be written; the caller treats it as failed.
		return ctx.Err()
	}
}

// enqueue hands r to the writer unless the log is closed. The writer is
// running while the log is not closed, so a full queue drains.
func (l *Log) enqueue(ctx context.Context, r *appendReq) error {
	l.sending.RLock()
	defer l.sending.RUnlock()
	if l.closed {
		return ErrClosed
	}
	select {
	case l.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxBatch bounds one group commit.
const maxBatch = 512

func (l *Log) run() {
	defer close(l.done)
	var tick <-chan time.Time
	if l.opts.CheckpointInterval > 0 {
		t := time.NewTicker(l.opts.CheckpointInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case r := <-l.reqs:
			l.commit(l.gather(r))
		case <-tick:
			if !l.checkpointDue(context.Background()) {
				continue
			}
			if _, err := l.checkpoint(context.Background()); err != nil {
				l.log.Error("audit checkpoint failed", "err", err)
			}
		case <-l.quit:
			for {
				select {
				case r := <-l.reqs:
					l.commit(l.gather(r))
				default:
					return
				}
			}
		}
	}
}

func (l *Log) gather(first *appendReq) []*appendReq {
	batch := []*appendReq{first}
	for len(batch) < maxBatch {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (l *Log) commit(batch []*appendReq) {
	evs := make([]*Event, len(batch))
	for i, r := range batch {
		evs[i] = &r.ev
	}
	err := l.appendSigned(context.Background(), evs)
	for _, r := range batch {
		r.done <- err
	}
	if err != nil {
		l.log.Error("audit append failed", "events", len(batch), "err", err)
		return
	}
	for _, ev := range evs {
		l.stream.write(ev)
	}
}

// appendSigned appends evs and signs the new head in one transaction.
func (l *Log) appendSigned(ctx context.Context, evs []*Event) error {
	l.keys.mu.Lock()
	defer l.keys.mu.Unlock()
	h, front, err := appendEvents(ctx, l.db.DB, evs, l.keys, l.opts.Now())
	if err != nil {
		return err
	}
	l.keys.head, l.keys.front = h, front
	return nil
}

// appendEvents chains and inserts evs in one immediate transaction. With
// keys it first checks the stored log against the signed head and then signs
// the new head; without keys (only tests, playing an attacker who can
// recompute hashes but holds no key) it writes no head. It returns the new
// head and the frontier hashes of the new tree.
func appendEvents(ctx context.Context, db *sql.DB, evs []*Event, keys *keyState, now time.Time) (Head, frontHashes, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return Head{}, nil, fmt.Errorf("audit: %w", err)
	}
	defer tx.Rollback()
	// One appender at a time across instances sharing a PostgreSQL database:
	// the head read below is then the newest committed one.
	if err := store.LockTx(ctx, db, tx, store.AuditAppendLock); err != nil {
		return Head{}, nil, fmt.Errorf("audit: %w", err)
	}
	var lastID int64
	prev := make([]byte, 32)
	err = tx.QueryRowContext(ctx, `SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&lastID, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Head{}, nil, fmt.Errorf("audit: head: %w", err)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO audit_events(id, time, type, user_name, user_issuer, user_subject,
		client_addr, client_version, key_fingerprint, cert_serial, target, login, session_id, reason, details,
		prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return Head{}, nil, fmt.Errorf("audit: %w", err)
	}
	defer ins.Close()
	tree, err := newTreeWriter(ctx, tx)
	if err != nil {
		return Head{}, nil, err
	}
	defer tree.close()
	var head Head
	if keys != nil {
		if head, tree.trusted, err = keys.checkHead(ctx, tx, lastID, tree, false); err != nil {
			return Head{}, nil, err
		}
	}
	for _, ev := range evs {
		lastID++
		ev.ID = lastID
		canon, err := Canonical(ev)
		if err != nil {
			return Head{}, nil, err
		}
		details, _ := CanonicalDetails(ev.Details)
		hash := ChainHash(prev, canon)
		if _, err := ins.ExecContext(ctx, ev.ID, ev.Time.UnixNano(), ev.Type, ev.User, ev.UserIssuer, ev.UserSubject,
			ev.ClientAddr, ev.ClientVersion, ev.KeyFingerprint, int64(ev.CertSerial), ev.Target, ev.Login, ev.SessionID,
			ev.Reason, string(details), prev, hash); err != nil {
			return Head{}, nil, fmt.Errorf("audit: insert: %w", err)
		}
		if err := tree.add(ev.ID-1, hash); err != nil {
			return Head{}, nil, err
		}
		prev = hash
	}
	if keys == nil {
		return Head{}, nil, tx.Commit()
	}
	root, front, err := rootAndFrontier(lastID, tree)
	if err != nil {
		return Head{}, nil, fmt.Errorf("audit: tree: %w", err)
	}
	head, err = keys.signHead(ctx, tx, Head{Size: lastID, Root: root, Time: now, Checkpoints: head.Checkpoints})
	if err != nil {
		return Head{}, nil, err
	}
	return head, front, tx.Commit()
}

// treeWriter stores the tlog Merkle tree hashes of new leaves in a tx. It
// reads hashes it wrote in this batch, then the trusted frontier (the
// complete-subtree hashes of the last head this process checked), and only
// then the table: so a root it computes for a new head does not depend on
// stored rows someone may have rewritten.
type treeWriter struct {
	ctx      context.Context
	get, put *sql.Stmt
	written  map[int64]tlog.Hash
	trusted  map[int64]tlog.Hash // may be nil
}

func newTreeWriter(ctx context.Context, tx *sql.Tx) (*treeWriter, error) {
	get, err := tx.PrepareContext(ctx, `SELECT hash FROM audit_tree WHERE idx = ?`)
	if err != nil {
		return nil, fmt.Errorf("audit: tree: %w", err)
	}
	put, err := tx.PrepareContext(ctx, `INSERT INTO audit_tree(idx, hash) VALUES (?, ?)`)
	if err != nil {
		get.Close()
		return nil, fmt.Errorf("audit: tree: %w", err)
	}
	return &treeWriter{ctx: ctx, get: get, put: put, written: map[int64]tlog.Hash{}}, nil
}

func (t *treeWriter) close() { t.get.Close(); t.put.Close() }

func (t *treeWriter) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if h, ok := t.written[idx]; ok {
			out[i] = h
			continue
		}
		if h, ok := t.trusted[idx]; ok {
			out[i] = h
			continue
		}
		var b []byte
		if err := t.get.QueryRowContext(t.ctx, idx).Scan(&b); err != nil {
			return nil, fmt.Errorf("audit: tree hash %d: %w", idx, err)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// add stores the hashes for leaf n (0-based) whose data is the event hash.
func (t *treeWriter) add(n int64, eventHash []byte) error {
	hs, err := tlog.StoredHashes(n, eventHash, t)
	if err != nil {
		return fmt.Errorf("audit: tree: %w", err)
	}
	base := tlog.StoredHashIndex(0, n)
	for i, h := range hs {
		if _, err := t.put.ExecContext(t.ctx, base+int64(i), h[:]); err != nil {
			return fmt.Errorf("audit: tree: %w", err)
		}
		t.written[base+int64(i)] = h
	}
	return nil
}

// Close stops taking appends, writes every one already queued, writes a
// final checkpoint and stops the writer.
func (l *Log) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.sending.Lock()
		l.closed = true
		l.sending.Unlock()
		close(l.quit)
		<-l.done
		_, err = l.checkpoint(context.Background())
		l.stream.close()
	})
	return err
}
