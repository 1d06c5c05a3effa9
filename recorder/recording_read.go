package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrNoRecording is returned for an unknown recording id.
var ErrNoRecording = errors.New("recorder: no such recording")

// RecordingMeta describes a stored recording.
type RecordingMeta struct {
	ID, SessionID, User, Target, Login string
	Started, Ended                     time.Time // Ended is zero while live
	Complete                           bool
	Reason, SHA256                     string
	Bytes                              int64
	Cols, Rows                         int
	Interactive                        bool
	Command                            string
	Commands                           []Command
	// SealPending: the recording ended but its final record could not be
	// written yet (its store was down); recovery retries the seal.
	SealPending bool
}

type recRow struct {
	RecordingMeta
	file     string
	wrapped  []byte
	instance string // the owning instance
}

func (r *Recordings) row(ctx context.Context, id string) (recRow, error) {
	var m recRow
	var started int64
	var ended sql.NullInt64
	err := r.db.QueryRowContext(ctx, `SELECT id, session_id, user_name, target, login, file, wrapped_key, started,
		ended, complete, reason, sha256, bytes, cols, rows, interactive, command, instance_id, seal_pending
		FROM recordings WHERE id = ?`, id).Scan(
		&m.ID, &m.SessionID, &m.User, &m.Target, &m.Login, &m.file, &m.wrapped, &started, &ended, &m.Complete,
		&m.Reason, &m.SHA256, &m.Bytes, &m.Cols, &m.Rows, &m.Interactive, &m.Command, &m.instance, &m.SealPending)
	if errors.Is(err, sql.ErrNoRows) {
		return m, ErrNoRecording
	}
	if err != nil {
		return m, fmt.Errorf("recorder: %w", err)
	}
	m.Started = time.Unix(0, started).UTC()
	if ended.Valid {
		m.Ended = time.Unix(0, ended.Int64).UTC()
	}
	return m, nil
}

// Meta returns a recording's description and its command list.
func (r *Recordings) Meta(ctx context.Context, id string) (RecordingMeta, error) {
	m, err := r.row(ctx, id)
	if err != nil {
		return RecordingMeta{}, err
	}
	m.Commands, err = r.commands(ctx, id)
	return m.RecordingMeta, err
}

func (r *Recordings) commands(ctx context.Context, id string) ([]Command, error) {
	return recordingCommands(ctx, r.db.DB, id)
}

func (r *Recordings) key(m recRow) ([]byte, error) {
	return r.kr.Open("recording:"+m.ID, m.wrapped)
}

// readEvents decrypts recording m and calls fn for the header JSON and each
// event. A sealed recording must end with its final record.
func (r *Recordings) readEvents(m recRow, header func([]byte), fn func(castEvent) error) error {
	return r.readRecords(m, header, fn, nil)
}

// readRecords is readEvents that also hands the final record's JSON to
// final (if not nil).
func (r *Recordings) readRecords(m recRow, header func([]byte), fn func(castEvent) error, final func([]byte)) error {
	key, err := r.key(m)
	if err != nil {
		return err
	}
	f, err := r.openFile(m)
	if err != nil {
		return err
	}
	defer f.Close()
	rr, err := newRecordReader(f, key, m.ID)
	if err != nil {
		return err
	}
	// A recording whose seal is pending (its store was down when it ended)
	// reads like a live one: up to its last whole record.
	sealed := !m.Ended.IsZero() && !m.SealPending
	for i := 0; ; i++ {
		pt, err := rr.next()
		if err == io.EOF || (err == errTornTail && !sealed) {
			if sealed {
				return fmt.Errorf("%w: the final record is missing", ErrRecordingCorrupt)
			}
			return nil
		}
		if err != nil && err != errTornTail {
			return err // the store failed to read, not the recording: say so
		}
		if err != nil {
			return fmt.Errorf("%w: record %d does not authenticate", ErrRecordingCorrupt, i)
		}
		switch {
		case len(pt) == 0:
			return fmt.Errorf("%w: empty record", ErrRecordingCorrupt)
		case i == 0 && pt[0] != recHeader, i > 0 && pt[0] == recHeader:
			return fmt.Errorf("%w: misplaced header", ErrRecordingCorrupt)
		case pt[0] == recHeader:
			header(pt[1:])
		case pt[0] == recEvents:
			if err := decodeEvents(pt[1:], fn); err != nil {
				return err
			}
		case pt[0] == recFinal:
			if final != nil {
				final(pt[1:])
			}
			if _, err := rr.next(); err != io.EOF && err != errTornTail && err != nil {
				return err
			} else if err != io.EOF {
				return fmt.Errorf("%w: data after the final record", ErrRecordingCorrupt)
			}
			return nil
		default:
			return fmt.Errorf("%w: unknown record kind", ErrRecordingCorrupt)
		}
	}
}

// OpenCast returns the decrypted recording as asciicast v2. Keystrokes are
// included as "i" events only when withInput is set. Commands reconstructed
// from the screen are added as "m" markers at their offsets.
func (r *Recordings) OpenCast(ctx context.Context, id string, withInput bool) (io.ReadCloser, error) {
	m, err := r.row(ctx, id)
	if err != nil {
		return nil, err
	}
	cmds, err := r.commands(ctx, id)
	if err != nil {
		return nil, err
	}
	var screen []Command
	for _, c := range cmds {
		if c.Source == "screen" {
			screen = append(screen, c)
		}
	}
	var out bytes.Buffer
	enc := newCastEncoder(&out)
	err = r.readEvents(m, func(h []byte) {
		out.Write(h)
		out.WriteByte('\n')
	}, func(ev castEvent) error {
		for len(screen) > 0 && uint64(screen[0].Offset.Microseconds()) <= ev.T {
			enc.line('m', uint64(screen[0].Offset.Microseconds()), []byte(screen[0].Text))
			screen = screen[1:]
		}
		if (ev.Type == 'i' && !withInput) || ev.Type == recElided {
			return nil
		}
		enc.line(ev.Type, ev.T, ev.Data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, c := range screen {
		enc.line('m', uint64(c.Offset.Microseconds()), []byte(c.Text))
	}
	return io.NopCloser(&out), nil
}

// castEncoder writes asciicast v2 event lines, carrying incomplete UTF-8
// sequences over to the next event of the same stream.
type castEncoder struct {
	w     *bytes.Buffer
	carry map[byte][]byte
}

func newCastEncoder(w *bytes.Buffer) *castEncoder {
	return &castEncoder{w: w, carry: map[byte][]byte{}}
}

func (e *castEncoder) line(typ byte, t uint64, data []byte) {
	if typ == 'o' || typ == 'e' || typ == 'i' {
		data = append(e.carry[typ], data...)
		cut := len(data)
		for i := 1; i <= 3 && i <= len(data); i++ {
			if utf8.RuneStart(data[len(data)-i]) {
				if !utf8.FullRune(data[len(data)-i:]) {
					cut = len(data) - i
				}
				break
			}
		}
		e.carry[typ] = append([]byte(nil), data[cut:]...)
		data = data[:cut]
	}
	e.w.Write(castLine(nil, outputType(typ), t, data))
}

// castLine formats one asciicast v2 event line.
func castLine(dst []byte, typ byte, t uint64, data []byte) []byte {
	dst = append(dst, '[')
	dst = strconv.AppendFloat(dst, float64(t)/1e6, 'f', 6, 64)
	dst = append(dst, ", \""...)
	dst = append(dst, typ)
	dst = append(dst, "\", "...)
	dst = appendJSONString(dst, data)
	return append(dst, "]\n"...)
}

// appendJSONString appends data as a JSON string; invalid UTF-8 becomes
// U+FFFD. Terminal output is data: it is escaped, never interpreted.
func appendJSONString(dst, data []byte) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(string(data))
	return append(dst, bytes.TrimRight(b.Bytes(), "\n")...)
}

// sealTorn cuts a torn tail and appends a final record saying reason; it
// returns the new file hash and the recorded output bytes. A recording that
// already ends with its final record (an instance died between writing it
// and its row) is left as it is.
func (r *Recordings) sealTorn(m recRow, reason string) (string, int64, error) {
	key, err := r.key(m)
	if err != nil {
		return "", 0, fmt.Errorf("%w: its key does not open: %v", ErrRecordingCorrupt, err)
	}
	if isS3File(m.file) {
		return r.sealTornS3(m, key, reason)
	}
	path := filepath.Join(r.dir, filepath.Base(m.file))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	rr, err := newRecordReader(f, key, m.ID)
	if err != nil {
		return "", 0, err
	}
	var bytes int64
	final := false
	for !final {
		pt, err := rr.next()
		if err == io.EOF || errors.Is(err, errTornTail) {
			break
		}
		if err != nil {
			return "", 0, err // never cut what could not be read
		}
		bytes += recordBytes(pt)
		final = len(pt) > 0 && pt[0] == recFinal
	}
	if final {
		sum, err := fileSHA256(path)
		return sum, bytes, err
	}
	if err := f.Truncate(rr.off); err != nil {
		return "", 0, err
	}
	if _, err := f.Seek(rr.off, io.SeekStart); err != nil {
		return "", 0, err
	}
	if len(key) != 32 {
		return "", 0, fmt.Errorf("recorder: recording %s: data key is %d bytes, want 32", m.ID, len(key))
	}
	w := &Recording{id: m.ID, f: f, key: [32]byte(key), n: rr.n}
	fb, _ := json.Marshal(recFinalJSON{Reason: reason, Complete: false, End: r.opts.Now().UnixNano()})
	if err := w.writeRecord(append([]byte{recFinal}, fb...)); err != nil {
		return "", 0, err
	}
	if err := f.Sync(); err != nil {
		return "", 0, err
	}
	sum, err := fileSHA256(path)
	return sum, bytes, err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RawStreams is what ExportRaw found in a recording.
type RawStreams struct {
	// Written is the number of bytes written per stream (stdout, stderr,
	// stdin): exactly the bytes the recording holds.
	Written map[string]int64
	// Sealed is the seal's account of each stream (all bytes that passed,
	// how many were stored, the SHA-256 of all of them); empty for a
	// recording sealed after a crash or made before raw streams existed.
	Sealed map[string]StreamSummary
	// Interactive recordings hold a terminal's output; their streams are
	// what the terminal showed.
	Interactive bool
}

// ExportRaw writes the exact recorded bytes of each stream to the writer
// open returns for its name ("stdout", "stderr", "stdin"; stdin only when
// withInput). Nothing is decoded or replaced: binary output comes back as
// it passed. It never writes a stream the recording does not hold.
func (r *Recordings) ExportRaw(ctx context.Context, id string, withInput bool, open func(stream string) (io.Writer, error)) (RawStreams, error) {
	out := RawStreams{Written: map[string]int64{}}
	m, err := r.row(ctx, id)
	if err != nil {
		return out, err
	}
	out.Interactive = m.Interactive
	writers := map[byte]io.Writer{}
	err = r.readRecords(m, func([]byte) {}, func(ev castEvent) error {
		name, ok := streamNames[ev.Type]
		if !ok || (ev.Type == 'i' && !withInput) || len(ev.Data) == 0 {
			return nil
		}
		w := writers[ev.Type]
		if w == nil {
			var err error
			if w, err = open(name); err != nil {
				return err
			}
			writers[ev.Type] = w
		}
		if _, err := w.Write(ev.Data); err != nil {
			return fmt.Errorf("recorder: export %s: %w", name, err)
		}
		out.Written[name] += int64(len(ev.Data))
		return nil
	}, func(fb []byte) {
		var f recFinalJSON
		if json.Unmarshal(fb, &f) == nil {
			out.Sealed = f.Streams
		}
	})
	return out, err
}

// openFile opens a recording's bytes wherever its row says they are.
func (r *Recordings) openFile(m recRow) (io.ReadCloser, error) {
	if isS3File(m.file) {
		if r.s3 == nil {
			return nil, fmt.Errorf("recorder: recording %s is in object storage (%s) but recording.s3 is not configured", m.ID, m.file)
		}
		rc, _, err := r.s3.open(context.Background(), m.ID)
		return rc, err
	}
	f, err := os.Open(filepath.Join(r.dir, filepath.Base(m.file)))
	if err != nil {
		return nil, fmt.Errorf("recorder: recording %s: %w", m.ID, err)
	}
	return f, nil
}

// sealTornS3 is sealTorn for a recording in object storage: its segments
// are read through (each was one atomic PUT of whole records) and the final
// record is written as the next segment. Nothing is overwritten or deleted.
func (r *Recordings) sealTornS3(m recRow, key []byte, reason string) (string, int64, error) {
	if r.s3 == nil {
		return "", 0, fmt.Errorf("recorder: recording %s is in object storage but recording.s3 is not configured", m.ID)
	}
	rc, nseg, err := r.s3.open(context.Background(), m.ID)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	rr, err := newRecordReader(io.TeeReader(rc, h), key, m.ID)
	if err != nil {
		return "", 0, err
	}
	var bytes int64
	for {
		pt, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil && err != errTornTail {
			return "", 0, err // the store failed: retry later, judge nothing
		}
		if err != nil {
			// A segment is one PUT of whole records: a bad one is not a
			// torn write but damage, and it cannot be cut off.
			return "", 0, fmt.Errorf("%w: record %d does not authenticate", ErrRecordingCorrupt, rr.n)
		}
		bytes += recordBytes(pt)
		if len(pt) > 0 && pt[0] == recFinal {
			return fmt.Sprintf("%x", h.Sum(nil)), bytes, nil
		}
	}
	if len(key) != 32 {
		return "", 0, fmt.Errorf("recorder: recording %s: data key is %d bytes, want 32", m.ID, len(key))
	}
	sw := newSegmentWriter(r.s3, m.ID, nseg)
	sw.h = h
	w := &Recording{id: m.ID, f: sw, key: [32]byte(key), n: rr.n}
	fb, _ := json.Marshal(recFinalJSON{Reason: reason, Complete: false, End: r.opts.Now().UnixNano()})
	if err := w.writeRecord(append([]byte{recFinal}, fb...)); err != nil {
		return "", 0, err
	}
	return sw.sum(), bytes, nil
}
