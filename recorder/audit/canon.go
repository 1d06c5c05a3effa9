package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode/utf8"
)

// canonVersion is the first byte of every canonical encoding; a new
// encoding gets a new version so old chains still verify.
const canonVersion = 1

// Canonical returns the unambiguous encoding of ev that its chain hash
// covers: a version byte, the id and time as 8-byte big-endian integers, the
// certificate serial likewise, and every string field length-prefixed (uvarint)
// in a fixed order, ending with the canonical JSON of Details. Two different
// events never have the same encoding.
func Canonical(ev *Event) ([]byte, error) {
	details, err := CanonicalDetails(ev.Details)
	if err != nil {
		return nil, err
	}
	return canonicalWith(ev, string(details)), nil
}

// canonicalWith encodes ev with details given as their stored JSON text, so
// verification hashes exactly the bytes that are stored.
func canonicalWith(ev *Event, details string) []byte {
	var b bytes.Buffer
	b.Grow(256 + len(details))
	b.WriteByte(canonVersion)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(ev.ID))
	b.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(ev.Time.UnixNano()))
	b.Write(n[:])
	binary.BigEndian.PutUint64(n[:], ev.CertSerial)
	b.Write(n[:])
	for _, s := range []string{ev.Type, ev.User, ev.UserIssuer, ev.UserSubject, ev.ClientAddr, ev.ClientVersion,
		ev.KeyFingerprint, ev.Target, ev.Login, ev.SessionID, ev.Reason, details} {
		writeString(&b, s)
	}
	return b.Bytes()
}

func writeString(b *bytes.Buffer, s string) {
	var n [binary.MaxVarintLen64]byte
	b.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	b.WriteString(s)
}

// ErrBadDetails is returned for details values other than strings, integers
// and booleans.
var ErrBadDetails = errors.New("audit: event details must be strings, integers or booleans")

// CanonicalDetails encodes details as a JSON object with sorted keys and
// only string, integer and boolean values (integers without exponent).
func CanonicalDetails(d map[string]any) ([]byte, error) {
	if len(d) == 0 {
		return []byte("{}"), nil
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if !utf8.ValidString(k) {
			return nil, fmt.Errorf("%w (key %q is not UTF-8)", ErrBadDetails, k)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		v, err := canonicalValue(d[k])
		if err != nil {
			return nil, fmt.Errorf("%w (key %q is %T)", ErrBadDetails, k, d[k])
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func canonicalValue(v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return nil, ErrBadDetails
		}
		return json.Marshal(x)
	case bool:
		return json.Marshal(x)
	case int:
		return json.Marshal(int64(x))
	case int32:
		return json.Marshal(int64(x))
	case int64:
		return json.Marshal(x)
	case uint32:
		return json.Marshal(uint64(x))
	case uint64:
		return json.Marshal(x)
	case float64:
		// JSON numbers decoded from an export arrive as float64; accept
		// them only when they are integers.
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return json.Marshal(int64(x))
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return json.Marshal(i)
		}
	}
	return nil, ErrBadDetails
}

// ParseDetails decodes canonical details JSON back into a map.
func ParseDetails(s string) (map[string]any, error) {
	d := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("audit: details: %w", err)
	}
	for k, v := range d {
		if n, ok := v.(json.Number); ok {
			i, err := n.Int64()
			if err != nil {
				return nil, fmt.Errorf("audit: details %q: %w", k, err)
			}
			d[k] = i
		}
	}
	return d, nil
}

// sanitize replaces invalid UTF-8 in every string of ev with U+FFFD, so the
// stored event, its export and its canonical form all say the same thing.
func sanitize(ev *Event) {
	for _, p := range []*string{&ev.Type, &ev.User, &ev.UserIssuer, &ev.UserSubject, &ev.ClientAddr, &ev.ClientVersion,
		&ev.KeyFingerprint, &ev.Target, &ev.Login, &ev.SessionID, &ev.Reason} {
		*p = strings.ToValidUTF8(*p, "\uFFFD")
	}
	if len(ev.Details) == 0 {
		return
	}
	clean := make(map[string]any, len(ev.Details))
	for k, v := range ev.Details {
		if s, ok := v.(string); ok {
			v = strings.ToValidUTF8(s, "\uFFFD")
		}
		clean[strings.ToValidUTF8(k, "\uFFFD")] = v
	}
	ev.Details = clean
}

// ChainHash returns SHA-256(prev || canonical).
func ChainHash(prev []byte, canonical []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(canonical)
	return h.Sum(nil)
}
