package recorder

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The recording file format:
//
//	magic "GHREC1\n"
//	record*: uint32 big-endian length L, then L bytes of AES-256-GCM
//	         ciphertext (nonce = 12-byte big-endian record counter,
//	         additional data = recording id)
//
// Each record's plaintext starts with a kind byte: 'H' (header JSON, always
// record 0), 'E' (events), 'F' (final: seal JSON, always last). Events are
// [type byte 'o'|'e'|'i'|'r'|'m'|'x'][uvarint µs since start][uvarint len][data]:
// 'o' output (stdout), 'e' stderr (sessions without a terminal), 'i' input,
// 'r' resize, 'm' marker, and 'x' bytes that passed but were not stored
// (data: the stream's type byte, then the uvarint count) once a stream of a
// session without a terminal was full (RecordingOptions.StreamFullBytes).
// Records are written as they are sealed (at least every second), so a crash
// loses at most the open record; a torn tail fails authentication and is cut
// off when the recording is recovered. Counter nonces make dropped or
// reordered records fail to open.
const recMagic = "GHREC1\n"

const (
	recHeader = 'H'
	recEvents = 'E'
	recFinal  = 'F'
)

// recElided is the event type of stream bytes that were not stored.
const recElided = 'x'

// outputType is the asciicast event type of a recorded event: stderr is
// output to a viewer.
func outputType(typ byte) byte {
	if typ == 'e' {
		return 'o'
	}
	return typ
}

// maxRecord bounds one record so a corrupt length cannot exhaust memory.
const maxRecord = 4 << 20

var (
	// ErrRecordingCorrupt is wrapped by errors for recordings that fail
	// authentication or are malformed.
	ErrRecordingCorrupt = errors.New("recorder: recording is corrupt or was modified")
	errTornTail         = errors.New("recorder: torn record at the end")
)

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func recNonce(n uint64) []byte {
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], n)
	return nonce[:]
}

// recordReader decrypts records one by one.
type recordReader struct {
	r    *bufio.Reader
	aead cipher.AEAD
	ad   []byte
	n    uint64
	off  int64 // offset just after the last good record
	buf  []byte
}

func newRecordReader(r io.Reader, key []byte, id string) (*recordReader, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(recMagic))
	if _, err := io.ReadFull(br, magic); err != nil && !isShortRead(err) {
		return nil, fmt.Errorf("recorder: read recording: %w", err)
	} else if err != nil || string(magic) != recMagic {
		return nil, fmt.Errorf("%w: not a Gatehouse recording", ErrRecordingCorrupt)
	}
	return &recordReader{r: br, aead: aead, ad: []byte(id), off: int64(len(recMagic))}, nil
}

// isShortRead tells the end of the bytes (a torn or missing tail) from a
// failure to read them (a store that is down or refuses access): only the
// first may be judged as the recording's content.
func isShortRead(err error) bool {
	return err == io.EOF || err == io.ErrUnexpectedEOF
}

// next returns the next record's plaintext; io.EOF at a clean end,
// errTornTail for an incomplete or unauthentic last record, and any other
// read error as it is — a store that fails mid-read must not make a
// recording look torn (recovery would seal it short).
func (rr *recordReader) next() ([]byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(rr.r, lb[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		if !isShortRead(err) {
			return nil, fmt.Errorf("recorder: read recording: %w", err)
		}
		return nil, errTornTail
	}
	l := binary.BigEndian.Uint32(lb[:])
	if l > maxRecord || l < uint32(rr.aead.Overhead()) {
		return nil, errTornTail
	}
	if cap(rr.buf) < int(l) {
		rr.buf = make([]byte, l)
	}
	ct := rr.buf[:l]
	if _, err := io.ReadFull(rr.r, ct); err != nil {
		if !isShortRead(err) {
			return nil, fmt.Errorf("recorder: read recording: %w", err)
		}
		return nil, errTornTail
	}
	pt, err := rr.aead.Open(nil, recNonce(rr.n), ct, rr.ad)
	if err != nil {
		return nil, errTornTail
	}
	rr.n++
	rr.off += 4 + int64(l)
	return pt, nil
}

// recordBytes is the session bytes (output, stderr, input) an events
// record holds; zero for any other record.
func recordBytes(pt []byte) int64 {
	var n int64
	if len(pt) > 0 && pt[0] == recEvents {
		decodeEvents(pt[1:], func(ev castEvent) error {
			if ev.Type == 'o' || ev.Type == 'e' || ev.Type == 'i' {
				n += int64(len(ev.Data))
			}
			return nil
		})
	}
	return n
}

// castEvent is one decoded event.
type castEvent struct {
	Type byte
	T    uint64 // microseconds since start
	Data []byte
}

func appendEvent(b []byte, typ byte, t uint64, data []byte) []byte {
	b = append(b, typ)
	b = binary.AppendUvarint(b, t)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// decodeEvents parses an 'E' record payload.
func decodeEvents(p []byte, fn func(castEvent) error) error {
	for len(p) > 0 {
		typ := p[0]
		if typ != 'o' && typ != 'e' && typ != 'i' && typ != 'r' && typ != 'm' && typ != recElided {
			return fmt.Errorf("%w: unknown event type %q", ErrRecordingCorrupt, typ)
		}
		t, n := binary.Uvarint(p[1:])
		if n <= 0 {
			return fmt.Errorf("%w: bad event time", ErrRecordingCorrupt)
		}
		p = p[1+n:]
		l, n := binary.Uvarint(p)
		if n <= 0 || l > uint64(len(p)-n) {
			return fmt.Errorf("%w: bad event length", ErrRecordingCorrupt)
		}
		data := p[n : n+int(l)]
		p = p[n+int(l):]
		if err := fn(castEvent{typ, t, data}); err != nil {
			return err
		}
	}
	return nil
}
