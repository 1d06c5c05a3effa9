package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/gatehouse/gatehouse/internal/secrets"
)

// The signed head is rewritten in the same transaction as every batch of
// events and every checkpoint. It states the number of events, the Merkle
// root over them and how many checkpoints exist, signed with the active audit
// key, so that nothing in the log can be changed, added, truncated or deleted
// by someone holding the database but not the master key without `verify`
// noticing — including the events after the newest checkpoint.

// headHeader starts the text of every head note.
const headHeader = "gatehouse audit head"

// Head is the signed statement of the whole log's current state.
type Head struct {
	Size        int64 // number of events ever written (the last id)
	Root        tlog.Hash
	Time        time.Time
	Checkpoints int64 // checkpoints written so far
	KeyID       string
	Note        []byte
}

// ErrTampered is wrapped by writer errors raised when the stored log no
// longer matches its signed head: the writer refuses to sign over it.
var ErrTampered = errors.New("audit: the audit log was changed without the signing key")

func headText(h Head) string {
	return fmt.Sprintf("%s\n%d\n%s\n%s\ncheckpoints %d\nkey %s\n", headHeader, h.Size, h.Root,
		h.Time.UTC().Format(time.RFC3339Nano), h.Checkpoints, h.KeyID)
}

// openSigned verifies msg with keys and returns its text lines (without the
// final empty one) and the id of the key that signed it. A "key ID" line in
// the text must name a key that signed the note.
func openSigned(msg []byte, keys Keys) ([]string, string, error) {
	vs, err := keys.verifiers()
	if err != nil {
		return nil, "", err
	}
	n, err := note.Open(msg, vs)
	if err != nil {
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return nil, "", fmt.Errorf("not signed by a known audit key (%s)", sigIDs(unv.Note.UnverifiedSigs))
		}
		return nil, "", err
	}
	lines := strings.Split(n.Text, "\n")
	lines = lines[:len(lines)-1] // note text always ends in a newline
	signed := map[string]bool{}
	var first string
	for _, s := range n.Sigs {
		id := fmt.Sprintf("%08x", s.Hash)
		signed[id] = true
		if first == "" {
			first = id
		}
	}
	if last := lines[len(lines)-1]; strings.HasPrefix(last, "key ") {
		id := strings.TrimPrefix(last, "key ")
		if !signed[id] {
			return nil, "", fmt.Errorf("names key %s but is not signed by it", id)
		}
		return lines[:len(lines)-1], id, nil
	}
	return lines, first, nil
}

func sigIDs(sigs []note.Signature) string {
	var ids []string
	for _, s := range sigs {
		ids = append(ids, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	if len(ids) == 0 {
		return "no signature"
	}
	return "signed by " + strings.Join(ids, ", ")
}

// parseHead verifies a head note with keys.
func parseHead(msg []byte, keys Keys) (Head, error) {
	lines, id, err := openSigned(msg, keys)
	if err != nil {
		return Head{}, fmt.Errorf("audit: signed head: %w", err)
	}
	if len(lines) != 5 || lines[0] != headHeader || !strings.HasPrefix(lines[4], "checkpoints ") {
		return Head{}, fmt.Errorf("audit: signed head: not a gatehouse audit head")
	}
	h := Head{KeyID: id, Note: msg}
	h.Size, err = strconv.ParseInt(lines[1], 10, 64)
	if err == nil {
		h.Root, err = tlog.ParseHash(lines[2])
	}
	if err == nil {
		h.Time, err = time.Parse(time.RFC3339Nano, lines[3])
	}
	if err == nil {
		h.Checkpoints, err = strconv.ParseInt(strings.TrimPrefix(lines[4], "checkpoints "), 10, 64)
	}
	if err != nil || h.Size < 0 || h.Checkpoints < 0 {
		return Head{}, fmt.Errorf("audit: signed head: malformed")
	}
	return h, nil
}

// keyState is the writer's signing key and the last head it knows is good.
type keyState struct {
	sec *secrets.Store

	// mu protects the following; it is held across each signing transaction.
	mu     sync.Mutex
	raw    []byte // the key file last loaded
	keys   Keys
	signer note.Signer
	head   Head        // the last head this process wrote or verified
	front  frontHashes // the complete-subtree hashes of head's tree, checked against its root
}

// frontHashes are the stored hashes of the complete subtrees of a tree: all
// that later roots and leaves need from it.
type frontHashes map[int64]tlog.Hash

// rootAndFrontier computes the root of a tree of n leaves and returns the
// hashes it was computed from (exactly the frontier).
func rootAndFrontier(n int64, r tlog.HashReader) (tlog.Hash, frontHashes, error) {
	front := frontHashes{}
	root, err := tlog.TreeHash(n, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs, err := r.ReadHashes(idx)
		for i := range hs {
			front[idx[i]] = hs[i]
		}
		return hs, err
	}))
	return root, front, err
}

// refresh reloads the key file when another process rotated it, so a writer
// never signs with a retired key once the rotation is committed.
func (k *keyState) refresh(ctx context.Context) error {
	raw, err := k.sec.Get(ctx, auditKeysSecret)
	if err != nil {
		return fmt.Errorf("audit: keys: %w", err)
	}
	if bytes.Equal(raw, k.raw) {
		return nil
	}
	f, _, _, err := readKeyFile(ctx, k.sec)
	if err != nil {
		return err
	}
	return k.set(f, raw)
}

func (k *keyState) set(f auditKeyFile, raw []byte) error {
	s, err := signerFor(f)
	if err != nil {
		return err
	}
	k.raw, k.keys, k.signer = raw, Keys(f.Keys), s
	return nil
}

// activeID is the id of the signing key.
func (k *keyState) activeID() string { return k.keys[0].ID }

// checkHead reads the signed head inside tx and checks that the stored log
// is exactly what it signed: lastID events and the same Merkle root. Only
// then may the writer sign over it; otherwise a keyless rewrite would be
// laundered by the next signature. When the head is the one this process
// last wrote and full is false, its frontier is in memory and new roots are
// computed from it, not from stored rows; otherwise (checkpoints, first use,
// another process wrote, or a forgery) the keys are reloaded and the root is
// recomputed from the stored tree.
func (k *keyState) checkHead(ctx context.Context, tx *sql.Tx, lastID int64, tr tlog.HashReader, full bool) (Head, frontHashes, error) {
	var size, count int64
	var msg string
	err := tx.QueryRowContext(ctx, `SELECT tree_size, checkpoints, note FROM audit_head WHERE id = 1`).Scan(&size, &count, &msg)
	if errors.Is(err, sql.ErrNoRows) {
		if lastID == 0 {
			return Head{}, frontHashes{}, nil
		}
		return Head{}, nil, fmt.Errorf("%w: the signed head is missing but %d events are stored", ErrTampered, lastID)
	}
	if err != nil {
		return Head{}, nil, fmt.Errorf("audit: head: %w", err)
	}
	if !full && bytes.Equal([]byte(msg), k.head.Note) && k.front != nil {
		if k.head.Size != lastID {
			return Head{}, nil, fmt.Errorf("%w: the signed head covers %d events, the table ends at %d", ErrTampered, k.head.Size, lastID)
		}
		return k.head, k.front, nil
	}
	if err := k.refresh(ctx); err != nil {
		return Head{}, nil, err
	}
	h, err := parseHead([]byte(msg), k.keys)
	if err != nil {
		return Head{}, nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	if h.Size != lastID {
		return Head{}, nil, fmt.Errorf("%w: the signed head covers %d events, the table ends at %d", ErrTampered, h.Size, lastID)
	}
	if h.Size == 0 { // a checkpoint of the empty log: no tree to compare
		return h, frontHashes{}, nil
	}
	root, front, err := rootAndFrontier(h.Size, tr)
	if err != nil {
		return Head{}, nil, fmt.Errorf("%w: Merkle tree: %v", ErrTampered, err)
	}
	if root != h.Root {
		return Head{}, nil, fmt.Errorf("%w: the stored events no longer match the signed head", ErrTampered)
	}
	return h, front, nil
}

// signHead signs and stores a new head inside tx; the caller records it in
// k.head after the commit.
func (k *keyState) signHead(ctx context.Context, tx *sql.Tx, h Head) (Head, error) {
	h.KeyID = k.activeID()
	msg, err := note.Sign(&note.Note{Text: headText(h)}, k.signer)
	if err != nil {
		return Head{}, fmt.Errorf("audit: sign audit head: %w", err)
	}
	h.Note = msg
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_head(id, tree_size, checkpoints, note) VALUES (1, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET tree_size = excluded.tree_size, checkpoints = excluded.checkpoints, note = excluded.note`,
		h.Size, h.Checkpoints, string(msg))
	if err != nil {
		return Head{}, fmt.Errorf("audit: store audit head: %w", err)
	}
	return h, nil
}
