package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/syslog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/gatehouse/gatehouse/internal/store"
)

// checkpointHeader starts the text of every checkpoint note.
const checkpointHeader = "gatehouse audit log"

// Checkpoint is a signed statement of the audit log's size and Merkle root
// at a time.
type Checkpoint struct {
	Size  int64
	Root  tlog.Hash
	Time  time.Time
	Seq   int64  // 1 for the first checkpoint written, 2 for the next...; 0 in notes of earlier versions
	KeyID string // the audit key that signed it
	Note  []byte // the signed note
}

func checkpointText(cp Checkpoint) string {
	return fmt.Sprintf("%s\n%d\n%s\n%s\ncheckpoint %d\nkey %s\n", checkpointHeader, cp.Size, cp.Root,
		cp.Time.Format(time.RFC3339), cp.Seq, cp.KeyID)
}

// Checkpoint signs and stores the current size and root, and ships the note
// to the configured file and URL. It refuses (ErrTampered) when the
// stored log no longer matches its signed head.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) { return l.checkpoint(ctx) }

func (l *Log) checkpoint(ctx context.Context) (Checkpoint, error) {
	cp, err := l.signCheckpoint(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	l.ship(cp)
	return cp, nil
}

// signCheckpoint checks the head, then stores a checkpoint and a head
// counting it, in one transaction.
func (l *Log) signCheckpoint(ctx context.Context) (Checkpoint, error) {
	k := l.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.refresh(ctx); err != nil {
		return Checkpoint{}, err
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	defer tx.Rollback()
	if err := store.LockTx(ctx, l.db.DB, tx, store.AuditAppendLock); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	var size int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM audit_events`).Scan(&size); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	h, front, err := k.checkHead(ctx, tx, size, &treeReader{ctx: ctx, tx: tx}, true)
	if err != nil {
		return Checkpoint{}, err
	}
	now := l.opts.Now().UTC()
	cp := Checkpoint{Size: size, Root: h.Root, Time: now.Truncate(time.Second), Seq: h.Checkpoints + 1, KeyID: k.activeID()}
	if cp.Note, err = note.Sign(&note.Note{Text: checkpointText(cp)}, k.signer); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints(tree_size, root_hash, time, note) VALUES (?, ?, ?, ?)`,
		cp.Size, cp.Root[:], cp.Time.Unix(), string(cp.Note)); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: store checkpoint: %w", err)
	}
	nh, err := k.signHead(ctx, tx, Head{Size: size, Root: h.Root, Time: now, Checkpoints: h.Checkpoints + 1})
	if err != nil {
		return Checkpoint{}, err
	}
	if err := tx.Commit(); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	k.head, k.front = nh, front
	return cp, nil
}

// checkpointIfBehind writes a checkpoint when the newest stored one does not
// cover every event (a writer that crashed before its final checkpoint).
func (l *Log) checkpointIfBehind(ctx context.Context) error {
	var last, covered int64
	err := l.db.QueryRowContext(ctx, `SELECT COALESCE((SELECT MAX(id) FROM audit_events), 0),
		COALESCE((SELECT MAX(tree_size) FROM audit_checkpoints), 0)`).Scan(&last, &covered)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if last == 0 || covered >= last {
		return nil
	}
	_, err = l.checkpoint(ctx)
	return err
}

// ship sends a checkpoint off the box; failures are logged, not fatal (the
// checkpoint is stored locally either way).
func (l *Log) ship(cp Checkpoint) {
	if p := l.opts.CheckpointFile; p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err == nil {
			_, err = f.Write(append(append([]byte(nil), cp.Note...), '\n'))
			f.Close()
		}
		if err != nil {
			l.log.Error("audit checkpoint file", "path", p, "err", err)
		}
	}
	if u := l.opts.CheckpointURL; u != "" {
		c := http.Client{Timeout: 10 * time.Second}
		resp, err := c.Post(u, "text/plain; charset=utf-8", bytes.NewReader(cp.Note))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		if err != nil {
			l.log.Error("audit checkpoint POST", "url", u, "err", err)
		}
	}
}

type treeReader struct {
	ctx context.Context
	tx  *sql.Tx
}

func (t *treeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		var b []byte
		if err := t.tx.QueryRowContext(t.ctx, `SELECT hash FROM audit_tree WHERE idx = ?`, idx).Scan(&b); err != nil {
			return nil, fmt.Errorf("tree hash %d: %w", idx, err)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// SplitCheckpoints splits a checkpoint file (notes appended one after
// another, as CheckpointFile is written) into its notes. Text before the
// first checkpoint header is returned as a note of its own, so it fails
// verification instead of being ignored.
func SplitCheckpoints(b []byte) [][]byte {
	var notes [][]byte
	s := string(b)
	for len(strings.TrimSpace(s)) > 0 {
		next := strings.Index(s[1:], "\n"+checkpointHeader+"\n")
		chunk := s
		if next >= 0 {
			chunk, s = s[:next+2], s[next+2:]
		} else {
			s = ""
		}
		notes = append(notes, []byte(strings.TrimRight(chunk, "\n")+"\n"))
	}
	return notes
}

// ParseCheckpoint verifies a checkpoint note with the verifier key (or
// several, one per line) and returns its content.
func ParseCheckpoint(msg []byte, verifierKey string) (Checkpoint, error) {
	keys, err := ParseKeys(verifierKey)
	if err != nil {
		return Checkpoint{}, err
	}
	return parseCheckpoint(msg, keys)
}

// parseCheckpoint verifies msg with keys. Notes of earlier versions carry no
// "key" line; their key id comes from the signature.
func parseCheckpoint(msg []byte, keys Keys) (Checkpoint, error) {
	lines, id, err := openSigned(msg, keys)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint signature: %w", err)
	}
	cp := Checkpoint{Note: msg, KeyID: id}
	if len(lines) == 5 && strings.HasPrefix(lines[4], "checkpoint ") {
		cp.Seq, err = strconv.ParseInt(strings.TrimPrefix(lines[4], "checkpoint "), 10, 64)
		if err != nil || cp.Seq < 1 {
			return Checkpoint{}, fmt.Errorf("audit: checkpoint number %q", lines[4])
		}
		lines = lines[:4]
	}
	if len(lines) != 4 || lines[0] != checkpointHeader {
		return Checkpoint{}, fmt.Errorf("audit: not a gatehouse checkpoint")
	}
	if cp.Size, err = strconv.ParseInt(lines[1], 10, 64); err != nil || cp.Size < 0 {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint size %q", lines[1])
	}
	if cp.Root, err = tlog.ParseHash(lines[2]); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint root: %w", err)
	}
	if cp.Time, err = time.Parse(time.RFC3339, lines[3]); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint time: %w", err)
	}
	return cp, nil
}

// auditStream copies committed events to a SIEM as JSON lines.
type auditStream struct {
	mu sync.Mutex
	w  interface{ Write([]byte) (int, error) }
	c  func() error
}

func openAuditStream(spec string) (*auditStream, error) {
	s := &auditStream{}
	switch {
	case spec == "":
	case spec == "stdout":
		s.w = os.Stdout
	case spec == "syslog":
		w, err := syslog.New(syslog.LOG_INFO|syslog.LOG_AUTHPRIV, "gatehouse")
		if err != nil {
			return nil, fmt.Errorf("audit: stream syslog: %w", err)
		}
		s.w, s.c = w, w.Close
	case strings.HasPrefix(spec, "file:"):
		f, err := os.OpenFile(strings.TrimPrefix(spec, "file:"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit: stream: %w", err)
		}
		s.w, s.c = f, f.Close
	default:
		return nil, fmt.Errorf("audit: stream %q: want stdout, syslog or file:/path", spec)
	}
	return s, nil
}

func (s *auditStream) write(ev *Event) {
	if s == nil || s.w == nil {
		return
	}
	b, err := json.Marshal(eventJSON(ev))
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w.Write(append(b, '\n'))
}

func (s *auditStream) close() {
	if s != nil && s.c != nil {
		s.c()
	}
}
