package recorder

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/internal/store"
)

// SessionStore writes the start and end row of every session (one session =
// one SSH session channel on a target) to the sessions table.
type SessionStore struct {
	db       *sql.DB
	instance string // written as the owner of every session this store starts
}

// NewSessionStore returns a SessionStore over db.
func NewSessionStore(db *sql.DB) *SessionStore { return &SessionStore{db: db} }

// SetInstance names the instance (internal/instance) that owns the sessions
// Start writes from now on; recovery seals them only once its lease is gone.
func (s *SessionStore) SetInstance(id string) { s.instance = id }

// Session is one session row.
type Session struct {
	ID                string
	User              string
	ClientAddr        string
	ClientVersion     string
	KeyFingerprint    string
	UserCertSerial    uint64
	Target            string
	TargetKind        string // ssh | docker
	Login             string
	Mode              string // direct | proxyjump
	Kind              string // shell | exec | subsystem:<name>
	Command           string
	SessionCertSerial uint64
	Start             time.Time

	// Set when the session has ended.
	End               time.Time
	ExitStatus        *int
	ExitSignal        string
	EndReason         string
	BytesIn           int64 // client to target
	BytesOut          int64 // target to client
	RecordingID       string
	RecordingComplete bool
	RecordingSHA256   string
}

// Start writes the start row. It must succeed before any byte is relayed.
func (s *SessionStore) Start(ctx context.Context, r Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions(id, user_name, client_addr, client_version,
		key_fingerprint, user_cert_serial, target, target_kind, login, mode, kind, command,
		session_cert_serial, start_at, recording_id, instance_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.User, r.ClientAddr, r.ClientVersion, r.KeyFingerprint, int64(r.UserCertSerial), r.Target,
		r.TargetKind, r.Login, r.Mode, r.Kind, r.Command, int64(r.SessionCertSerial), r.Start.UTC().UnixNano(),
		r.RecordingID, s.instance)
	if err != nil {
		return fmt.Errorf("recorder: session start row: %w", err)
	}
	return nil
}

// Finish writes the end of session r.ID from the end fields of r.
func (s *SessionStore) Finish(ctx context.Context, r Session) error {
	var exit sql.NullInt64
	if r.ExitStatus != nil {
		exit = sql.NullInt64{Int64: int64(*r.ExitStatus), Valid: true}
	}
	end := r.End
	if end.IsZero() {
		end = time.Now()
	}
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET end_at = ?, exit_status = ?, exit_signal = ?,
		end_reason = ?, bytes_in = ?, bytes_out = ?, recording_id = ?, recording_complete = ?, recording_sha256 = ?
		WHERE id = ? AND end_at IS NULL`,
		end.UTC().UnixNano(), exit, r.ExitSignal, r.EndReason, r.BytesIn, r.BytesOut, r.RecordingID,
		r.RecordingComplete, r.RecordingSHA256, r.ID)
	if err != nil {
		return fmt.Errorf("recorder: session end row: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("recorder: session %s: no open session to end", r.ID)
	}
	return nil
}

// ErrNoSession is returned by Get for an unknown id.
var ErrNoSession = errors.New("recorder: no such session")

const sessionColumns = `id, user_name, client_addr, client_version, key_fingerprint, user_cert_serial, target,
	target_kind, login, mode, kind, command, session_cert_serial, start_at, end_at, exit_status, exit_signal,
	end_reason, bytes_in, bytes_out, recording_id, recording_complete, recording_sha256`

// Get returns session id.
func (s *SessionStore) Get(ctx context.Context, id string) (Session, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id)
	r, err := scanSession(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	return r, err
}

type rowScanner interface{ Scan(dest ...any) error }

// scanSession reads the sessionColumns of a row, then any extra columns
// into extra.
func scanSession(row rowScanner, extra ...any) (Session, error) {
	var r Session
	var userSerial, sessSerial, start int64
	var end, exit sql.NullInt64
	dest := append([]any{&r.ID, &r.User, &r.ClientAddr, &r.ClientVersion, &r.KeyFingerprint, &userSerial, &r.Target,
		&r.TargetKind, &r.Login, &r.Mode, &r.Kind, &r.Command, &sessSerial, &start, &end, &exit, &r.ExitSignal,
		&r.EndReason, &r.BytesIn, &r.BytesOut, &r.RecordingID, &r.RecordingComplete, &r.RecordingSHA256}, extra...)
	err := row.Scan(dest...)
	if err != nil {
		return Session{}, err
	}
	r.UserCertSerial, r.SessionCertSerial = uint64(userSerial), uint64(sessSerial)
	r.Start = time.Unix(0, start).UTC()
	if end.Valid {
		r.End = time.Unix(0, end.Int64).UTC()
	}
	if exit.Valid {
		v := int(exit.Int64)
		r.ExitStatus = &v
	}
	return r, nil
}

// SessionFilter selects sessions for the sessions page. Zero fields do not
// filter.
type SessionFilter struct {
	User, Target, Login string
	Live, Ended         bool      // only live / only ended sessions
	Since, Until        time.Time // by start time
	Command             string    // a command containing this text
	Before              time.Time // keyset paging: sessions that started before this
	Limit               int       // zero means 50
}

// SessionRow is a session with its command count.
type SessionRow struct {
	Session
	Commands int
}

// List returns sessions matching f, newest first. Paging is by start time
// (keyset), so it stays fast however many sessions there are.
func (s *SessionStore) List(ctx context.Context, f SessionFilter) ([]SessionRow, error) {
	var conds []string
	var args []any
	add := func(c string, v ...any) { conds = append(conds, c); args = append(args, v...) }
	if f.User != "" {
		add("user_name = ?", f.User)
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if f.Login != "" {
		add("login = ?", f.Login)
	}
	if f.Live {
		add("end_at IS NULL")
	}
	if f.Ended {
		add("end_at IS NOT NULL")
	}
	if !f.Since.IsZero() {
		add("start_at >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("start_at < ?", f.Until.UnixNano())
	}
	if !f.Before.IsZero() {
		add("start_at < ?", f.Before.UnixNano())
	}
	if f.Command != "" {
		c, v, err := s.commandContains(ctx, f.Command)
		if err != nil {
			return nil, err
		}
		add(c, v...)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	q := `SELECT ` + sessionColumns + `, (SELECT COUNT(*) FROM recording_commands rc WHERE rc.recording_id = sessions.recording_id)
		FROM sessions`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY start_at DESC LIMIT ?"
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("recorder: sessions: %w", err)
	}
	defer rows.Close()
	var out []SessionRow
	for rows.Next() {
		var r SessionRow
		var err error
		if r.Session, err = scanSession(rows, &r.Commands); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Command search. Three characters or more use the trigram index of
// migration 0006: a command contains text only if it holds every trigram of
// text, so the commands holding the rarest two trigrams (counted in the
// index, up to a cap) are read and then checked with LIKE. That reads
// a few rows for a selective text, where a phrase query would walk every
// command sharing a common trigram ("ser" of "service"). When even the
// rarest trigram is in many commands (or the text is under three characters,
// or not ASCII), matches are common: sessions are then scanned newest first
// and the scan stops at the page size.
const (
	// searchIndexMaxRows is the most commands the index path reads.
	searchIndexMaxRows = 1_000
	// searchMaxTrigrams bounds the trigram counts for a long text.
	searchMaxTrigrams = 48
)

// commandContains is the condition and arguments of "a recorded command
// contains text" (case-insensitive for ASCII, like LIKE).
func (s *SessionStore) commandContains(ctx context.Context, text string) (string, []any, error) {
	like := "%" + escapeLike(text) + "%"
	if store.IsPostgresDB(s.db) {
		// PostgreSQL: the pg_trgm GIN index of migration 0006 serves ILIKE
		// (case-insensitive, as SQLite's LIKE is for ASCII) directly.
		return `sessions.recording_id IN (SELECT recording_id FROM recording_commands
			WHERE text ILIKE ? ESCAPE '\')`, []any{like}, nil
	}
	scan := `EXISTS (SELECT 1 FROM recording_commands rc WHERE rc.recording_id = sessions.recording_id
			AND rc.text LIKE ? ESCAPE '\')`
	grams := trigrams(text)
	if len(grams) == 0 {
		return scan, []any{like}, nil
	}
	rare, err := s.rarestTrigrams(ctx, grams)
	if err != nil {
		return "", nil, err
	}
	if rare == nil {
		return scan, []any{like}, nil
	}
	q := make([]string, len(rare))
	for i, g := range rare {
		q[i] = `text : "` + strings.ReplaceAll(g, `"`, `""`) + `"`
	}
	return `sessions.recording_id IN (SELECT recording_id FROM recording_commands_fts
			WHERE recording_commands_fts MATCH ? AND text LIKE ? ESCAPE '\')`,
		[]any{strings.Join(q, " AND "), like}, nil
}

// trigrams returns the distinct lower-cased trigrams of an ASCII text, as
// the trigram tokenizer indexes them, or nil (under three characters, or
// not ASCII: Unicode case folding is left to the tokenizer).
func trigrams(text string) []string {
	for i := 0; i < len(text); i++ {
		if text[i] >= utf8.RuneSelf {
			return nil
		}
	}
	lower := strings.ToLower(text)
	seen := map[string]bool{}
	var out []string
	for i := 0; i+3 <= len(lower); i++ {
		if g := lower[i : i+3]; !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	if len(out) > searchMaxTrigrams {
		out = append(out[:searchMaxTrigrams/2], out[len(out)-searchMaxTrigrams/2:]...)
	}
	return out
}

// rarestTrigrams returns the two trigrams in the fewest commands, or nil
// when every trigram is in more than searchIndexMaxRows commands. A trigram
// in no command is returned alone (nothing matches). Each count reads at
// most searchIndexMaxRows+1 index entries: a single-term query streams.
func (s *SessionStore) rarestTrigrams(ctx context.Context, grams []string) ([]string, error) {
	type gram struct {
		g string
		n int64
	}
	var counts []gram
	for _, g := range grams {
		var n int64
		err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM recording_commands_fts
			WHERE recording_commands_fts MATCH ? LIMIT ?)`, `text : "`+strings.ReplaceAll(g, `"`, `""`)+`"`,
			searchIndexMaxRows+1).Scan(&n)
		if err != nil {
			return nil, fmt.Errorf("recorder: command search: %w", err)
		}
		if n == 0 {
			return []string{g}, nil
		}
		if n <= searchIndexMaxRows {
			counts = append(counts, gram{g, n})
		}
	}
	if len(counts) == 0 {
		return nil, nil
	}
	sort.Slice(counts, func(i, j int) bool { return counts[i].n < counts[j].n })
	out := []string{counts[0].g}
	if len(counts) > 1 {
		out = append(out, counts[1].g)
	}
	return out, nil
}

// escapeLike escapes LIKE wildcards in s (the queries say ESCAPE '\').
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
