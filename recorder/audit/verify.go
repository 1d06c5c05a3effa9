package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Keys are the audit verifier keys, retired ones included
	// (AuditPublicKeys). Empty fails unless the log is empty.
	Keys Keys
	// Extra holds checkpoints kept elsewhere: one note, or a whole
	// CheckpointFile (every note in it is checked). ExtraName names it in the
	// report.
	Extra     []byte
	ExtraName string
	// Interval is the configured checkpoint interval: an event more than
	// 1.5 × Interval older than the newest event must be covered by a signed
	// checkpoint. Zero means 5m; negative disables the check.
	Interval time.Duration

	// RequireHead fails a log without a signed head even when it is empty:
	// set once the sealed key list exists (VerifyOptionsFor), since writers
	// sign a head as soon as they create the key.
	RequireHead bool

	// allowNoHead accepts a log without a signed head (adopting a log
	// written by an earlier version).
	allowNoHead bool
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	OK       bool
	Events   int64 // events read
	Pruned   int64 // events 1..Pruned were removed by retention (signed prune event)
	FirstBad int64 // id of the first bad event, 0 if none or not attributable
	Problem  string

	Checkpoints       int // signed checkpoints verified (stored + extra)
	StoredCheckpoints int
	ExtraCheckpoints  int
	ExtraName         string
	Latest            *Checkpoint // the newest checkpoint (largest size)
	Head              *Head
	KeysUsed          Keys          // keys that signed something verified
	Interval          time.Duration // freshness window used (0 when disabled)
}

func (r VerifyReport) String() string {
	if !r.OK {
		if r.FirstBad > 0 {
			return fmt.Sprintf("FAILED at event %d: %s", r.FirstBad, r.Problem)
		}
		return "FAILED: " + r.Problem
	}
	last := r.Pruned + r.Events
	if last == 0 {
		if r.Head != nil {
			return fmt.Sprintf("OK: the audit log is empty; its signed head (key %s) says so", r.Head.KeyID)
		}
		return "OK: the audit log is empty"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "OK: %s events (ids %s..%s), hash chain and Merkle tree intact", commas(r.Events), commas(r.Pruned+1), commas(last))
	if r.Pruned > 0 {
		fmt.Fprintf(&b, "; events 1..%s pruned by retention under a signed prune event, boundary checkpoint verified", commas(r.Pruned))
	}
	if r.Head != nil {
		fmt.Fprintf(&b, "; signed head covers all %s events", commas(last))
	}
	fmt.Fprintf(&b, "; %d signed checkpoints verified (%d in the database", r.Checkpoints, r.StoredCheckpoints)
	if r.ExtraName != "" {
		fmt.Fprintf(&b, ", %d from %s", r.ExtraCheckpoints, r.ExtraName)
	}
	fmt.Fprintf(&b, ") with keys %s", r.KeysUsed)
	switch {
	case r.Latest == nil:
		b.WriteString("; no checkpoint yet, every event is within the checkpoint interval")
	case r.Latest.Size >= last:
		b.WriteString("; newest checkpoint covers all events")
	default:
		fmt.Fprintf(&b, "; newest checkpoint covers %s events, the %s newer ones are covered by the signed head",
			commas(r.Latest.Size), commas(last-r.Latest.Size))
		if r.Interval > 0 {
			fmt.Fprintf(&b, " and within the %v checkpoint interval", r.Interval)
		}
	}
	return b.String()
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// memTree holds recomputed tlog stored hashes from index base on, and the
// few kept hashes of a pruned prefix (the boundary's complete subtrees).
type memTree struct {
	base   int64
	hashes []tlog.Hash
	prefix map[int64]tlog.Hash
}

func (m *memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < m.base {
			h, ok := m.prefix[idx]
			if !ok {
				return nil, fmt.Errorf("tree index %d was pruned", idx)
			}
			out[i] = h
			continue
		}
		if idx-m.base >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("tree index %d out of range", idx)
		}
		out[i] = m.hashes[idx-m.base]
	}
	return out, nil
}

// VerifyChain checks the log with the given verifier keys (one per line) and
// extra checkpoints, without the freshness check. Verify is the full check.
func VerifyChain(ctx context.Context, db *sql.DB, verifierKeys string, extra []byte) (VerifyReport, error) {
	keys, err := ParseKeys(verifierKeys)
	if err != nil {
		return VerifyReport{}, err
	}
	return Verify(ctx, db, VerifyOptions{Keys: keys, Extra: extra, ExtraName: "the given checkpoints", Interval: -1})
}

// Verify recomputes the whole chain and Merkle tree from the stored events
// and checks them against the signed head, every stored checkpoint and every
// checkpoint in opts.Extra, with the audit keys. It reports the first
// problem: edited, deleted, inserted or reordered rows; a truncated tail; a
// rewrite with recomputed hashes; a missing, forged or stale head or
// checkpoint; events removed without a signed prune event. It writes nothing.
func Verify(ctx context.Context, db *sql.DB, opts VerifyOptions) (VerifyReport, error) {
	if opts.Interval == 0 {
		opts.Interval = 5 * time.Minute
	}
	v := &verification{ctx: ctx, db: db, opts: opts, used: map[string]bool{}}
	v.rep.ExtraName = opts.ExtraName
	if opts.Interval > 0 {
		v.rep.Interval = opts.Interval
	}
	for _, step := range []func() error{v.keys, v.bounds, v.chain, v.checkpoints, v.head, v.pruned, v.fresh} {
		if err := step(); err == errStop {
			return v.rep, nil
		} else if err != nil {
			return v.rep, err
		}
	}
	for _, k := range opts.Keys {
		if v.used[k.ID] {
			v.rep.KeysUsed = append(v.rep.KeysUsed, k)
		}
	}
	v.rep.OK = true
	return v.rep, nil
}

// verification is the state of one Verify run; each step returns errStop
// after recording a problem.
type verification struct {
	ctx  context.Context
	db   *sql.DB
	opts VerifyOptions
	rep  VerifyReport

	base, last   int64     // events base+1..last are stored
	tree         *memTree  // recomputed
	boundaryRoot tlog.Hash // root of the pruned prefix (base > 0)
	firstPrev    []byte    // prev_hash of event base+1
	pruneThrough int64     // from the newest signed audit prune event
	pruneHash    string
	matched      int64 // largest checkpoint size whose root matched
	used         map[string]bool
	seqs         map[int64]bool // numbers of the stored checkpoints
	legacy       int64          // distinct stored notes without a number
	boundaryKept bool           // a checkpoint of exactly base events was found
}

var errStop = errors.New("stop")

func (v *verification) bad(id int64, format string, args ...any) error {
	v.rep.FirstBad, v.rep.Problem = id, fmt.Sprintf(format, args...)
	return errStop
}

// keys fails when the sealed keys are gone but something was written.
func (v *verification) keys() error {
	if len(v.opts.Keys) > 0 {
		return nil
	}
	empty, err := logIsEmpty(v.ctx, v.db)
	if err != nil {
		return err
	}
	if empty {
		v.rep.OK = true
		return errStop
	}
	return v.bad(0, "the sealed audit keys are missing from the database but the log holds events: "+
		"they were deleted (nothing can be verified)")
}

// bounds finds the stored id range and, after a prune, the kept boundary
// hashes.
func (v *verification) bounds() error {
	var first sql.NullInt64
	err := v.db.QueryRowContext(v.ctx, `SELECT MIN(id), COALESCE(MAX(id), 0) FROM audit_events`).Scan(&first, &v.last)
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	if first.Valid && first.Int64 > 1 {
		v.base = first.Int64 - 1
	}
	v.tree = &memTree{base: tlog.StoredHashIndex(0, v.base), prefix: map[int64]tlog.Hash{}}
	v.tree.hashes = make([]tlog.Hash, 0, 2*min(max(v.last-v.base, 0), 1<<26)+64)
	if v.base == 0 {
		return nil
	}
	idx, err := frontier(v.base)
	if err != nil {
		return err
	}
	for _, i := range idx {
		var b []byte
		if err := v.db.QueryRowContext(v.ctx, `SELECT hash FROM audit_tree WHERE idx = ?`, i).Scan(&b); err != nil {
			return v.bad(v.base+1, "events 1..%d are gone and the Merkle tree hashes kept at that boundary are missing (deleted)", v.base)
		}
		var h tlog.Hash
		copy(h[:], b)
		v.tree.prefix[i] = h
	}
	v.boundaryRoot, err = tlog.TreeHash(v.base, v.tree)
	return err
}

// frontier returns the stored-hash indexes of the complete subtrees of a
// tree of n leaves: all that is needed to extend it and compute later roots.
func frontier(n int64) ([]int64, error) {
	var idx []int64
	_, err := tlog.TreeHash(n, tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		idx = append(idx, ix...)
		return make([]tlog.Hash, len(ix)), nil
	}))
	return idx, err
}

// chain recomputes every event hash and the tree.
func (v *verification) chain() error {
	prev := make([]byte, 32)
	n := v.base
	err := pipelined(v.ctx, v.db, Filter{byID: true}, func(ev StoredEvent) error {
		want := n + 1
		switch {
		case ev.ID > want:
			return v.bad(want, "event %d is missing (deleted)", want)
		case ev.ID != want:
			return v.bad(want, "unexpected event id %d (inserted)", ev.ID)
		}
		got := ChainHash(ev.PrevHash, canonicalWith(&ev.Event, ev.DetailsJSON))
		if !bytes.Equal(got, ev.Hash) {
			return v.bad(ev.ID, "content does not match its hash (edited, inserted or moved)")
		}
		switch {
		case n == v.base && v.base > 0:
			v.firstPrev = ev.PrevHash // checked against the prune event
		case !bytes.Equal(ev.PrevHash, prev):
			if n == 0 {
				return v.bad(ev.ID, "the first event does not start the chain (earlier events deleted)")
			}
			return v.bad(n, "its hash no longer matches what event %d recorded (event %d was rewritten, or events were deleted or reordered)", ev.ID, n)
		}
		if ev.Type == EventPrune {
			v.notePrune(ev.DetailsJSON)
		}
		hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(ev.Hash), v.tree)
		if err != nil {
			return err
		}
		v.tree.hashes = append(v.tree.hashes, hs...)
		prev = ev.Hash
		n++
		return nil
	})
	v.rep.Events, v.rep.Pruned = n-v.base, v.base
	return err
}

// notePrune remembers the newest audit prune event's boundary.
func (v *verification) notePrune(details string) {
	d, err := ParseDetails(details)
	if err != nil || d["what"] != "audit" {
		return
	}
	if through, ok := d["pruned_through"].(int64); ok {
		v.pruneThrough = through
		v.pruneHash, _ = d["boundary_hash"].(string)
	}
}

// checkpoints checks every stored and extra checkpoint.
func (v *verification) checkpoints() error {
	stored, err := storedCheckpoints(v.ctx, v.db)
	if err != nil {
		return err
	}
	v.seqs = map[int64]bool{}
	legacy := map[string]bool{}
	for i, msg := range stored {
		cp, err := v.checkpoint(fmt.Sprintf("checkpoint %d of %d in the database", i+1, len(stored)), msg)
		if err != nil {
			return err
		}
		if cp.Seq > 0 {
			v.seqs[cp.Seq] = true
		} else {
			legacy[string(msg)] = true
		}
		v.rep.StoredCheckpoints++
	}
	v.legacy = int64(len(legacy))
	extra := SplitCheckpoints(v.opts.Extra)
	for i, msg := range extra {
		if _, err := v.checkpoint(fmt.Sprintf("checkpoint %d of %d in %s", i+1, len(extra), v.opts.ExtraName), msg); err != nil {
			return err
		}
		v.rep.ExtraCheckpoints++
	}
	if v.base > 0 && !v.boundaryKept {
		return v.bad(v.base+1, "events 1..%d are gone and no signed checkpoint of exactly %d events is kept at the boundary (deleted)", v.base, v.base)
	}
	return nil
}

// checkpoint checks one checkpoint note (where names it in reports)
// against the keys and the recomputed tree.
func (v *verification) checkpoint(where string, msg []byte) (Checkpoint, error) {
	cp, err := parseCheckpoint(msg, v.opts.Keys)
	if err != nil {
		return cp, v.bad(0, "%s does not verify: %v", where, err)
	}
	if err := v.keyInTime(cp.KeyID, cp.Time, where); err != nil {
		return cp, err
	}
	if err := v.checkpointRoot(where, cp); err != nil {
		return cp, err
	}
	if l := v.rep.Latest; l == nil || cp.Size > l.Size || (cp.Size == l.Size && cp.Time.After(l.Time)) {
		c := cp
		v.rep.Latest = &c
	}
	v.rep.Checkpoints++
	return cp, nil
}

// checkpointRoot compares a checkpoint with the events it covers: all of
// them recomputed, the kept boundary hashes after a prune, or (covering only
// pruned events) nothing left to compare.
func (v *verification) checkpointRoot(where string, cp Checkpoint) error {
	switch {
	case cp.Size > v.last:
		return v.bad(v.last+1, "log truncated: the checkpoint signed at %s covers %d events, only %d remain",
			stamp(cp.Time), cp.Size, v.last)
	case cp.Size < v.base || cp.Size == 0:
		return nil
	case cp.Size == v.base:
		if cp.Root != v.boundaryRoot {
			return v.bad(0, "the Merkle tree hashes kept for pruned events 1..%d no longer match the checkpoint signed at %s (rewritten)", v.base, stamp(cp.Time))
		}
		v.boundaryKept = true
		return nil
	}
	root, err := tlog.TreeHash(cp.Size, v.tree)
	if err != nil {
		return err
	}
	if root != cp.Root {
		return v.bad(0, "events 1..%d no longer match the checkpoint signed at %s (history rewritten; %s)", cp.Size, stamp(cp.Time), where)
	}
	v.matched = max(v.matched, cp.Size)
	return nil
}

// keyInTime checks that the key is known and signed before it was retired.
// Another writer process picks up a rotation at its next checkpoint at the
// latest, so signatures up to one checkpoint interval (plus a minute) after
// the retirement are accepted.
func (v *verification) keyInTime(id string, t time.Time, where string) error {
	k, ok := v.opts.Keys.byID(id)
	if !ok {
		return v.bad(0, "%s is signed by unknown key %s", where, id)
	}
	if !k.Retired.IsZero() && t.After(k.Retired.Add(time.Minute+max(v.opts.Interval, 0))) {
		return v.bad(0, "%s was signed at %s by key %s, retired at %s (a retired key must not sign)", where, stamp(t), id, stamp(k.Retired))
	}
	v.used[id] = true
	return nil
}

// head checks the signed head against the events and the checkpoint count.
func (v *verification) head() error {
	var msg string
	err := v.db.QueryRowContext(v.ctx, `SELECT note FROM audit_head WHERE id = 1`).Scan(&msg)
	if errors.Is(err, sql.ErrNoRows) {
		if v.last == 0 && v.rep.StoredCheckpoints == 0 && !v.opts.RequireHead || v.opts.allowNoHead {
			return nil
		}
		if v.last == 0 {
			return v.bad(0, "the signed head is missing (deleted): the log is empty although its signing key exists (emptied?)")
		}
		return v.bad(0, "the signed head is missing (deleted): nothing signed states how many events the log holds or covers the %s events after the newest checkpoint",
			commas(v.last-v.matched))
	}
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	h, err := parseHead([]byte(msg), v.opts.Keys)
	if err != nil {
		return v.bad(0, "the signed head does not verify (forged?): %v", err)
	}
	if err := v.keyInTime(h.KeyID, h.Time, "the signed head"); err != nil {
		return err
	}
	switch {
	case h.Size > v.last:
		return v.bad(v.last+1, "log truncated: the signed head covers %d events, only %d remain", h.Size, v.last)
	case h.Size < v.last:
		return v.bad(h.Size+1, "events %d..%d are not covered by the signed head (added without the signing key)", h.Size+1, v.last)
	}
	if h.Size > v.base {
		root, err := tlog.TreeHash(h.Size, v.tree)
		if err != nil {
			return err
		}
		if root != h.Root {
			return v.bad(0, "events %d..%d do not match the signed head (rewritten without the signing key, hashes recomputed)",
				max(v.matched, v.base)+1, h.Size)
		}
	}
	if missing := v.missingCheckpoints(h.Checkpoints); len(missing) > 0 {
		return v.bad(0, "the signed head records %d checkpoints; missing from the database (deleted): %s", h.Checkpoints, joinInts(missing))
	}
	v.rep.Head = &h
	return nil
}

// missingCheckpoints returns the numbers of checkpoints 1..n not stored. The
// first ones may be notes of an earlier version, which carry no number.
func (v *verification) missingCheckpoints(n int64) []int64 {
	var missing []int64
	for i := v.legacy + 1; i <= n; i++ {
		if !v.seqs[i] {
			missing = append(missing, i)
		}
	}
	return missing
}

func joinInts(ns []int64) string {
	var parts []string
	for i, n := range ns {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ns)-10))
			break
		}
		parts = append(parts, strconv.FormatInt(n, 10))
	}
	return strings.Join(parts, ", ")
}

// pruned checks that removed leading events were removed by retention.
func (v *verification) pruned() error {
	if v.base == 0 {
		return nil
	}
	if v.pruneThrough != v.base {
		return v.bad(v.base+1, "events 1..%d are gone and no signed prune event accounts for them (deleted)", v.base)
	}
	if v.pruneHash != hex.EncodeToString(v.firstPrev) {
		return v.bad(v.base+1, "event %d does not continue the chain the prune event recorded", v.base+1)
	}
	return nil
}

// fresh fails when events older than the checkpoint interval allows are not
// covered by any signed checkpoint.
func (v *verification) fresh() error {
	if v.opts.Interval < 0 || v.last <= v.base {
		return nil
	}
	covered := v.base
	if v.rep.Latest != nil {
		covered = max(covered, v.rep.Latest.Size)
	}
	if covered >= v.last {
		return nil
	}
	var oldest, newest int64
	err := v.db.QueryRowContext(v.ctx, `SELECT (SELECT time FROM audit_events WHERE id = ?), (SELECT time FROM audit_events WHERE id = ?)`,
		covered+1, v.last).Scan(&oldest, &newest)
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	allowed := v.opts.Interval + v.opts.Interval/2
	if gap := time.Duration(newest - oldest); gap > allowed {
		return v.bad(covered+1, "events %d..%d are not covered by any signed checkpoint, yet the oldest of them is %v older than the newest event "+
			"(checkpoints are written every %v): checkpoints are missing", covered+1, v.last, gap.Round(time.Second), v.opts.Interval)
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func storedCheckpoints(ctx context.Context, db *sql.DB) ([][]byte, error) {
	rows, err := db.QueryContext(ctx, `SELECT note FROM audit_checkpoints ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoints: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, []byte(s))
	}
	return out, rows.Err()
}

// Verify checks this log with its keys, its checkpoint interval and its
// configured checkpoint file, if it exists.
func (l *Log) Verify(ctx context.Context) (VerifyReport, error) {
	opts := VerifyOptions{Keys: l.Keys(), Interval: l.opts.CheckpointInterval, RequireHead: true}
	if p := l.opts.CheckpointFile; p != "" {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return VerifyReport{}, fmt.Errorf("audit: checkpoint file: %w", err)
		}
		opts.Extra, opts.ExtraName = b, p
	}
	return Verify(ctx, l.db.DB, opts)
}
