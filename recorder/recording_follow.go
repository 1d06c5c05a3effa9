package recorder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse/gatehouse/internal/usererr"
)

// Following a recording another instance is writing (the live view of a
// session on another instance): the recording store is shared (one S3
// bucket, or one directory on a shared filesystem), and every record is in
// it within a second of the session producing it (the flusher), so the
// viewer's instance reads the records as they arrive, decrypting them with
// the recording's key from the shared database. Nothing travels between
// instances except through the database and the store.

// ErrNotShared's message is what a viewer reads when the recording is in
// another instance's own directory.
var ErrNotShared = errors.New("this session runs on another instance whose recordings this instance cannot read; " +
	"live view and replay across instances need a shared recording store (recording.s3)")

// FollowPoll is how often Follow looks for new records.
const FollowPoll = 500 * time.Millisecond

// followState is how far a follower has read.
type followState struct {
	n    uint64 // records read
	off  int64  // file: offset after the last whole record (0: nothing read)
	segs int    // object store: segments read
}

// Follow sends the asciicast event lines (output, stderr as output, and
// resizes; never keystrokes) of recording id from its start, then each new
// record as it reaches the recording store, polling every `every` (zero
// means FollowPoll), until the recording is sealed, ctx ends or send fails.
func (r *Recordings) Follow(ctx context.Context, id string, every time.Duration, send func(line []byte) error) error {
	if every <= 0 {
		every = FollowPoll
	}
	var (
		st  followState
		buf bytes.Buffer
		enc = newCastEncoder(&buf)
	)
	emit := func(ev castEvent) error {
		if ev.Type != 'o' && ev.Type != 'e' && ev.Type != 'r' {
			return nil
		}
		buf.Reset()
		enc.line(ev.Type, ev.T, ev.Data)
		if buf.Len() == 0 {
			return nil
		}
		return send(bytes.TrimRight(buf.Bytes(), "\n"))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		m, err := r.row(ctx, id)
		if err != nil {
			return err
		}
		sealed := !m.Ended.IsZero()
		final, err := r.followOnce(ctx, m, &st, emit)
		if err != nil || final {
			return err
		}
		if sealed {
			// Sealed after this pass began: one more pass reads the rest.
			_, err := r.followOnce(ctx, m, &st, emit)
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// followOnce reads the records of m after st and hands their events to fn;
// final reports that the final record was read.
func (r *Recordings) followOnce(ctx context.Context, m recRow, st *followState, fn func(castEvent) error) (final bool, err error) {
	key, err := r.key(m)
	if err != nil {
		return false, err
	}
	src, segs, err := r.openFrom(ctx, m, st)
	if err != nil || src == nil {
		return false, err
	}
	defer src.Close()
	aead, err := newAEAD(key)
	if err != nil {
		return false, err
	}
	var rr *recordReader
	if st.n == 0 {
		if rr, err = newRecordReader(src, key, m.ID); err != nil {
			if isS3File(m.file) {
				return false, err
			}
			return false, nil // the file's first bytes are not all written yet
		}
	} else {
		rr = &recordReader{r: bufio.NewReaderSize(src, 64<<10), aead: aead, ad: []byte(m.ID), n: st.n, off: st.off}
	}
	for {
		pt, err := rr.next()
		if err == io.EOF || err == errTornTail {
			// The end of what is written so far (a torn tail is a record
			// being written now: read again from its start next time).
			if err == errTornTail && isS3File(m.file) {
				return false, fmt.Errorf("%w: record %d does not authenticate", ErrRecordingCorrupt, rr.n)
			}
			st.n, st.off = rr.n, rr.off
			st.segs = segs
			return false, nil
		}
		if len(pt) == 0 {
			return false, fmt.Errorf("%w: empty record", ErrRecordingCorrupt)
		}
		switch {
		case rr.n == 1 && pt[0] != recHeader, rr.n > 1 && pt[0] == recHeader:
			return false, fmt.Errorf("%w: misplaced header", ErrRecordingCorrupt)
		case pt[0] == recHeader:
		case pt[0] == recEvents:
			if err := decodeEvents(pt[1:], fn); err != nil {
				return false, err
			}
		case pt[0] == recFinal:
			return true, nil
		default:
			return false, fmt.Errorf("%w: unknown record kind", ErrRecordingCorrupt)
		}
	}
}

// openFrom opens recording m's bytes after what st has read: the file from
// st.off, or the segment objects after st.segs. It returns nil when there
// is nothing new, and the number of segments read once src is drained.
func (r *Recordings) openFrom(ctx context.Context, m recRow, st *followState) (io.ReadCloser, int, error) {
	if isS3File(m.file) {
		if r.s3 == nil {
			return nil, 0, fmt.Errorf("recorder: recording %s is in object storage (%s) but recording.s3 is not configured", m.ID, m.file)
		}
		keys, err := r.s3.segments(ctx, m.ID)
		if err != nil {
			return nil, 0, err
		}
		if len(keys) <= st.segs {
			return nil, st.segs, nil
		}
		return &segmentReader{ctx: ctx, st: r.s3, keys: keys[st.segs:]}, len(keys), nil
	}
	f, err := os.Open(filepath.Join(r.dir, filepath.Base(m.file)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, usererr.Wrap(fmt.Errorf("recording %s is not in %s", m.ID, r.dir), "recorder", ErrNotShared.Error())
	}
	if err != nil {
		return nil, 0, fmt.Errorf("recorder: recording %s: %w", m.ID, err)
	}
	if st.off > 0 {
		if _, err := f.Seek(st.off, io.SeekStart); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("recorder: recording %s: %w", m.ID, err)
		}
	}
	return f, 0, nil
}
