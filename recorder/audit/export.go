package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// ExportOptions selects what Export writes.
type ExportOptions struct {
	Format string // "csv" or "jsonl"
	Filter Filter
	Dir    string // created if missing
	// Actor is who asked for the export (audited).
	Actor string
}

// Manifest describes an export bundle; it is signed with the audit key.
type Manifest struct {
	Version    int       `json:"version"`
	Format     string    `json:"format"`
	File       string    `json:"file"`
	SHA256     string    `json:"sha256"`
	Count      int64     `json:"count"`
	FirstID    int64     `json:"first_id"`
	LastID     int64     `json:"last_id"`
	Filter     string    `json:"filter"`
	Created    time.Time `json:"created"`
	Checkpoint string    `json:"checkpoint"` // signed note of the log at export time
	Verifier   string    `json:"verifier_key"`
}

var csvHeader = []string{"id", "time", "type", "user", "user_issuer", "user_subject", "client_addr", "client_version",
	"key_fingerprint", "cert_serial", "target", "login", "session_id", "reason", "details", "prev_hash", "hash"}

const exportSigHeader = "gatehouse audit export"

// Export writes the events matching opts.Filter plus a signed manifest into
// opts.Dir, after writing an audit.export event and a fresh checkpoint.
func (l *Log) Export(ctx context.Context, opts ExportOptions) (Manifest, error) {
	if opts.Format != "csv" && opts.Format != "jsonl" {
		return Manifest{}, fmt.Errorf("audit: export format %q: want csv or jsonl", opts.Format)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return Manifest{}, fmt.Errorf("audit: export: %w", err)
	}
	desc := opts.Filter.describe()
	if err := l.Append(ctx, Event{Type: EventExport, User: opts.Actor, Reason: "audit export",
		Details: map[string]any{"format": opts.Format, "filter": desc}}); err != nil {
		return Manifest{}, err
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{Version: 1, Format: opts.Format, File: "events." + opts.Format, Filter: desc,
		Created: l.opts.Now().UTC(), Checkpoint: string(cp.Note), Verifier: l.VerifierKey()}
	if err := l.writeEvents(ctx, opts, &m); err != nil {
		return Manifest{}, err
	}
	return m, l.writeManifest(opts.Dir, m)
}

func (l *Log) writeEvents(ctx context.Context, opts ExportOptions, m *Manifest) error {
	f, err := os.OpenFile(filepath.Join(opts.Dir, m.File), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	var cw *csv.Writer
	var enc *json.Encoder
	if opts.Format == "csv" {
		cw = csv.NewWriter(bw)
		cw.Write(csvHeader)
	} else {
		enc = json.NewEncoder(bw)
	}
	flt := opts.Filter
	flt.Limit, flt.byID = 0, true
	err = pipelined(ctx, l.db.DB, flt, func(ev StoredEvent) error {
		r := storedRecord(&ev)
		if m.Count == 0 {
			m.FirstID = r.ID
		}
		m.Count++
		m.LastID = r.ID
		if cw != nil {
			return cw.Write(r.csvRow())
		}
		return enc.Encode(r)
	})
	if err != nil {
		return err
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	m.SHA256 = hex.EncodeToString(h.Sum(nil))
	return f.Sync()
}

func (r EventRecord) csvRow() []string {
	return []string{strconv.FormatInt(r.ID, 10), r.Time, r.Type, r.User, r.UserIssuer, r.UserSubject, r.ClientAddr,
		r.ClientVersion, r.KeyFingerprint, strconv.FormatUint(r.CertSerial, 10), r.Target, r.Login, r.SessionID,
		r.Reason, string(r.Details), r.PrevHash, r.Hash}
}

func (l *Log) writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	sum := sha256.Sum256(b)
	l.keys.mu.Lock()
	sig, err := note.Sign(&note.Note{Text: exportSigHeader + "\n" + hex.EncodeToString(sum[:]) + "\n"}, l.keys.signer)
	l.keys.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.sig"), sig, 0o600)
}

func (f Filter) describe() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if !f.Since.IsZero() {
		add("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		add("until", f.Until.UTC().Format(time.RFC3339))
	}
	add("user", f.User)
	add("target", f.Target)
	add("type", f.Type)
	add("session", f.SessionID)
	add("text", f.Text)
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

// ErrExportInvalid is wrapped by every VerifyExport failure.
var ErrExportInvalid = errors.New("export does not verify")

// VerifyExport checks an export bundle on its own with only the verifier
// key: the manifest signature, the events file hash, every event's chain
// hash, and the embedded checkpoint's signature.
func VerifyExport(dir, verifierKey string) (Manifest, error) {
	fail := func(format string, args ...any) (Manifest, error) {
		return Manifest{}, fmt.Errorf("%w: %s", ErrExportInvalid, fmt.Sprintf(format, args...))
	}
	mb, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return fail("%v", err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, "manifest.sig"))
	if err != nil {
		return fail("%v", err)
	}
	keys, err := ParseKeys(verifierKey)
	if err != nil {
		return Manifest{}, err
	}
	vs, err := keys.verifiers()
	if err != nil {
		return Manifest{}, err
	}
	n, err := note.Open(sig, vs)
	if err != nil {
		return fail("manifest signature: %v", err)
	}
	sum := sha256.Sum256(mb)
	if n.Text != exportSigHeader+"\n"+hex.EncodeToString(sum[:])+"\n" {
		return fail("manifest.json was modified after it was signed")
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return fail("manifest: %v", err)
	}
	if _, err := ParseCheckpoint([]byte(m.Checkpoint), verifierKey); err != nil {
		return fail("checkpoint: %v", err)
	}
	if filepath.Base(m.File) != m.File {
		return fail("manifest names a file outside the bundle")
	}
	data, err := os.ReadFile(filepath.Join(dir, m.File))
	if err != nil {
		return fail("%v", err)
	}
	if fs := sha256.Sum256(data); hex.EncodeToString(fs[:]) != m.SHA256 {
		return fail("%s was modified (SHA-256 differs from the signed manifest)", m.File)
	}
	count, err := checkRecords(data, m.Format)
	if err != nil {
		return fail("%v", err)
	}
	if count != m.Count {
		return fail("%s has %d events, the manifest says %d", m.File, count, m.Count)
	}
	return m, nil
}

// checkRecords recomputes each exported event's chain hash.
func checkRecords(data []byte, format string) (int64, error) {
	var count int64
	check := func(r EventRecord) error {
		ev, err := r.Event()
		if err != nil {
			return err
		}
		prev, err1 := hex.DecodeString(r.PrevHash)
		want, err2 := hex.DecodeString(r.Hash)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("event %d: bad hash fields", r.ID)
		}
		if !bytes.Equal(ChainHash(prev, canonicalWith(&ev, string(r.Details))), want) {
			return fmt.Errorf("event %d does not match its chain hash (edited)", r.ID)
		}
		count++
		return nil
	}
	if format == "jsonl" {
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var r EventRecord
			if err := dec.Decode(&r); err == io.EOF {
				return count, nil
			} else if err != nil {
				return count, fmt.Errorf("events.jsonl: %v", err)
			}
			if err := check(r); err != nil {
				return count, err
			}
		}
	}
	cr := csv.NewReader(bytes.NewReader(data))
	rows, err := cr.ReadAll()
	if err != nil {
		return 0, fmt.Errorf("events.csv: %v", err)
	}
	for i, row := range rows {
		if i == 0 {
			continue
		}
		r, err := recordFromCSV(row)
		if err != nil {
			return count, err
		}
		if err := check(r); err != nil {
			return count, err
		}
	}
	return count, nil
}

func recordFromCSV(row []string) (EventRecord, error) {
	if len(row) != len(csvHeader) {
		return EventRecord{}, fmt.Errorf("events.csv: row has %d fields, want %d", len(row), len(csvHeader))
	}
	id, err1 := strconv.ParseInt(row[0], 10, 64)
	serial, err2 := strconv.ParseUint(row[9], 10, 64)
	if err1 != nil || err2 != nil {
		return EventRecord{}, fmt.Errorf("events.csv: bad number in row %s", row[0])
	}
	return EventRecord{ID: id, Time: row[1], Type: row[2], User: row[3], UserIssuer: row[4], UserSubject: row[5],
		ClientAddr: row[6], ClientVersion: row[7], KeyFingerprint: row[8], CertSerial: serial, Target: row[10],
		Login: row[11], SessionID: row[12], Reason: row[13], Details: json.RawMessage(row[14]), PrevHash: row[15],
		Hash: row[16]}, nil
}
