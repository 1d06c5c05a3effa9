package audit

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Filter selects audit events. Zero fields do not filter.
type Filter struct {
	Since, Until time.Time // Since inclusive, Until exclusive
	User         string
	Target       string
	Type         string // exact type, or a prefix ending in '.' ("session.")
	SessionID    string
	Text         string // substring of reason or details
	Limit        int    // zero means 1000 for Query, unlimited for Export
	Offset       int
	Desc         bool // newest first
	AfterID      int64
	// BeforeTime and BeforeID page newest-first lists by keyset: only
	// events older than the event (BeforeTime, BeforeID). Zero BeforeID
	// does not filter.
	BeforeTime time.Time
	BeforeID   int64

	// byID orders by chain position instead of time (export, verify).
	byID bool
}

// StoredEvent is an event with its chain hashes.
type StoredEvent struct {
	Event
	PrevHash, Hash []byte
	DetailsJSON    string // canonical details as stored (Details is nil in export and verify)
}

const eventColumns = `id, time, type, user_name, user_issuer, user_subject, client_addr, client_version,
	key_fingerprint, cert_serial, target, login, session_id, reason, details, prev_hash, hash`

// where builds the WHERE clause from fixed fragments; values go only into
// placeholders.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		conds = append(conds, cond)
		args = append(args, v)
	}
	if !f.Since.IsZero() {
		add("time >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("time < ?", f.Until.UnixNano())
	}
	if f.User != "" {
		add("user_name = ?", f.User)
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if strings.HasSuffix(f.Type, ".") {
		add("type LIKE ? ESCAPE '\\'", escapeLike(f.Type)+"%")
	} else if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.SessionID != "" {
		add("session_id = ?", f.SessionID)
	}
	if f.AfterID > 0 {
		add("id > ?", f.AfterID)
	}
	if f.BeforeID > 0 {
		t := f.BeforeTime.UnixNano()
		conds = append(conds, "(time < ? OR (time = ? AND id < ?))")
		args = append(args, t, t, f.BeforeID)
	}
	if f.Text != "" {
		p := "%" + escapeLike(f.Text) + "%"
		conds = append(conds, "(reason LIKE ? ESCAPE '\\' OR details LIKE ? ESCAPE '\\')")
		args = append(args, p, p)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Query returns events matching f.
func (l *Log) Query(ctx context.Context, f Filter) ([]StoredEvent, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var out []StoredEvent
	err := QueryEvents(ctx, l.db.DB, f, func(ev StoredEvent) error {
		out = append(out, ev)
		return nil
	})
	return out, err
}

// QueryEvents calls fn for each event matching f, in id order (or reverse
// with f.Desc).
func QueryEvents(ctx context.Context, db *sql.DB, f Filter, fn func(StoredEvent) error) error {
	where, args := f.where()
	q := `SELECT ` + eventColumns + ` FROM audit_events` + where
	// Time order lets SQLite walk the (column, time) indexes instead of
	// sorting every match; the chain itself is in id order.
	switch {
	case f.byID:
		q += ` ORDER BY id`
	case f.Desc:
		q += ` ORDER BY time DESC, id DESC`
	default:
		q += ` ORDER BY time, id`
	}
	if f.Limit > 0 {
		q += ` LIMIT ? OFFSET ?`
		args = append(args, f.Limit, f.Offset)
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("audit: query: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		ev, err := scanEvent(rows, !f.byID)
		if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return rows.Err()
}

// scanEvent reads one row; parse fills Details from the stored JSON (export
// and verify work on DetailsJSON alone and skip it).
func scanEvent(rows *sql.Rows, parse bool) (StoredEvent, error) {
	var ev StoredEvent
	var t, serial int64
	err := rows.Scan(&ev.ID, &t, &ev.Type, &ev.User, &ev.UserIssuer, &ev.UserSubject, &ev.ClientAddr,
		&ev.ClientVersion, &ev.KeyFingerprint, &serial, &ev.Target, &ev.Login, &ev.SessionID, &ev.Reason,
		&ev.DetailsJSON, &ev.PrevHash, &ev.Hash)
	if err != nil {
		return ev, fmt.Errorf("audit: scan: %w", err)
	}
	ev.Time = time.Unix(0, t).UTC()
	ev.CertSerial = uint64(serial)
	if !parse {
		return ev, nil
	}
	ev.Details, err = ParseDetails(ev.DetailsJSON)
	if err != nil {
		// Keep the row readable; verification reports the mismatch.
		ev.Details = map[string]any{"_unparseable": ev.DetailsJSON}
	}
	return ev, nil
}

// EventRecord is the export and stream form of an event.
type EventRecord struct {
	ID             int64           `json:"id"`
	Time           string          `json:"time"`
	Type           string          `json:"type"`
	User           string          `json:"user"`
	UserIssuer     string          `json:"user_issuer"`
	UserSubject    string          `json:"user_subject"`
	ClientAddr     string          `json:"client_addr"`
	ClientVersion  string          `json:"client_version"`
	KeyFingerprint string          `json:"key_fingerprint"`
	CertSerial     uint64          `json:"cert_serial"`
	Target         string          `json:"target"`
	Login          string          `json:"login"`
	SessionID      string          `json:"session_id"`
	Reason         string          `json:"reason"`
	Details        json.RawMessage `json:"details"`
	PrevHash       string          `json:"prev_hash,omitempty"`
	Hash           string          `json:"hash,omitempty"`
}

func eventJSON(ev *Event) EventRecord {
	d, err := CanonicalDetails(ev.Details)
	if err != nil {
		d = []byte("{}")
	}
	return EventRecord{ID: ev.ID, Time: ev.Time.UTC().Format(time.RFC3339Nano), Type: ev.Type, User: ev.User,
		UserIssuer: ev.UserIssuer, UserSubject: ev.UserSubject, ClientAddr: ev.ClientAddr, ClientVersion: ev.ClientVersion,
		KeyFingerprint: ev.KeyFingerprint, CertSerial: ev.CertSerial, Target: ev.Target, Login: ev.Login,
		SessionID: ev.SessionID, Reason: ev.Reason, Details: d}
}

func storedRecord(ev *StoredEvent) EventRecord {
	r := eventJSON(&ev.Event)
	r.Details = json.RawMessage(ev.DetailsJSON)
	r.PrevHash, r.Hash = hex.EncodeToString(ev.PrevHash), hex.EncodeToString(ev.Hash)
	return r
}

// Event converts a record back to an event (for verification of exports).
func (r EventRecord) Event() (Event, error) {
	t, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		return Event{}, fmt.Errorf("event %d: time: %w", r.ID, err)
	}
	d, err := ParseDetails(string(r.Details))
	if err != nil {
		return Event{}, fmt.Errorf("event %d: %w", r.ID, err)
	}
	return Event{ID: r.ID, Time: t, Type: r.Type, User: r.User, UserIssuer: r.UserIssuer, UserSubject: r.UserSubject,
		ClientAddr: r.ClientAddr, ClientVersion: r.ClientVersion, KeyFingerprint: r.KeyFingerprint, CertSerial: r.CertSerial,
		Target: r.Target, Login: r.Login, SessionID: r.SessionID, Reason: r.Reason, Details: d}, nil
}

// pipelined is QueryEvents with the SQLite reads and fn on two goroutines:
// verifying or exporting a million events is bound by row decoding, so the
// hashing or formatting overlaps it. fn runs on the calling goroutine, in
// order; its first error stops the read and is returned.
func pipelined(ctx context.Context, db *sql.DB, f Filter, fn func(StoredEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []StoredEvent, 4)
	errc := make(chan error, 1)
	go func() {
		defer close(batches)
		errc <- readBatches(ctx, db, f, batches)
	}()
	for b := range batches {
		for _, ev := range b {
			if err := fn(ev); err != nil {
				cancel()
				for range batches { // let the reader finish
				}
				<-errc
				return err
			}
		}
	}
	return <-errc
}

// readBatches sends the events matching f in batches until done or ctx ends.
func readBatches(ctx context.Context, db *sql.DB, f Filter, out chan<- []StoredEvent) error {
	const size = 512
	batch := make([]StoredEvent, 0, size)
	send := func() error {
		select {
		case out <- batch:
			batch = make([]StoredEvent, 0, size)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := QueryEvents(ctx, db, f, func(ev StoredEvent) error {
		batch = append(batch, ev)
		if len(batch) < size {
			return nil
		}
		return send()
	})
	if err == nil && len(batch) > 0 {
		err = send()
	}
	return err
}
