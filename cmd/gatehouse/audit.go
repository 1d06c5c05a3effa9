package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

func init() {
	register(command{name: "audit", summary: "audit log: export, verify, verify-export, public-key, tail, rotate-key, prune", run: func(args []string, stdout, stderr io.Writer) error {
		return subcommand("audit", args, stdout, stderr, map[string]func([]string, io.Writer, io.Writer) error{
			"export": runAuditExport, "verify": runAuditVerify, "verify-export": runAuditVerifyExport,
			"public-key": runAuditPublicKey, "tail": runAuditTail, "rotate-key": runAuditRotateKey, "prune": runAuditPrune,
		})
	}})
}

func openAudit(cfgPath string) (*appEnv, *audit.Log, error) {
	env, err := openEnv(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	l, err := app.OpenAudit(&app.Env{Config: env.cfg, DB: env.db, Secrets: env.secrets}, nil)
	if err != nil {
		env.Close()
		return nil, nil, err
	}
	return env, l, nil
}

// parseWhen accepts RFC 3339 or a duration meaning "that long ago".
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: use RFC 3339 (2026-11-22T10:00:00Z), a date (2026-11-22) or a duration ago (24h)", s)
}

func runAuditExport(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("audit export", stderr)
	format := fs.String("format", "csv", "csv or jsonl")
	since := fs.String("since", "", "from (RFC 3339, date, or duration ago like 24h)")
	until := fs.String("until", "", "until (exclusive)")
	user := fs.String("user", "", "only this user")
	target := fs.String("target", "", "only this target")
	typ := fs.String("type", "", "only this event type (or a prefix like session.)")
	out := fs.String("out", "", "directory for the bundle (default audit-export-<time>)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	now := time.Now()
	s, err := parseWhen(*since, now)
	if err != nil {
		return fmt.Errorf("--since %w", err)
	}
	u, err := parseWhen(*until, now)
	if err != nil {
		return fmt.Errorf("--until %w", err)
	}
	dir := *out
	if dir == "" {
		dir = "audit-export-" + now.UTC().Format("20060102T150405Z")
	}
	env, l, err := openAudit(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	defer l.Close()
	m, err := l.Export(context.Background(), audit.ExportOptions{Format: *format, Dir: dir, Actor: osUser(),
		Filter: audit.Filter{Since: s, Until: u, User: *user, Target: *target, Type: *typ}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported %d events to %s (%s, sha256 %s)\nverify with: gatehouse audit verify-export %s --key '%s'\n",
		m.Count, dir, m.File, m.SHA256, dir, l.VerifierKey())
	return nil
}

func osUser() string {
	if u := os.Getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

// runAuditVerify checks the log read-only: it reads the keys without
// opening the log for writing, so it never appends, signs or creates a key.
func runAuditVerify(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("audit verify", stderr)
	cpFile := fs.String("checkpoint", "", "checkpoints kept elsewhere (default: audit.checkpoint_file from the config)")
	skipFile := fs.Bool("skip-checkpoint-file", false, "do not read audit.checkpoint_file (it is missing on purpose)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	env, err := openEnv(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	ctx := context.Background()
	opts, err := audit.VerifyOptionsFor(ctx, env.secrets)
	if err != nil {
		return err
	}
	opts.Interval = env.cfg.Audit.CheckpointInterval
	path := *cpFile
	if path == "" && !*skipFile {
		path = env.cfg.Audit.CheckpointFile
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stdout, "FAILED: cannot read the off-box checkpoint file: %v (pass --skip-checkpoint-file if it is missing on purpose)\n", err)
			return exitError{1}
		}
		opts.Extra, opts.ExtraName = b, path // every note in it is checked, not only the last
	}
	rep, err := audit.Verify(ctx, env.db.DB, opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep.String())
	if !rep.OK {
		return exitError{1}
	}
	return nil
}

func runAuditVerifyExport(args []string, stdout, stderr io.Writer) error {
	fs, _ := newFlags("audit verify-export", stderr)
	key := fs.String("key", "", "the audit verifier key (from 'gatehouse audit public-key')")
	keyFile := fs.String("key-file", "", "file holding the verifier key")
	if err := fs.Parse(reorder(args)); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: gatehouse audit verify-export DIR --key KEY | --key-file FILE")
		return errUsage
	}
	k := *key
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		k = strings.TrimSpace(string(b))
	}
	if k == "" {
		return fmt.Errorf("give the auditor's copy of the verifier key with --key or --key-file (never trust the key inside the bundle)")
	}
	m, err := audit.VerifyExport(fs.Arg(0), k)
	if err != nil {
		fmt.Fprintln(stdout, "FAILED:", err)
		return exitError{1}
	}
	fmt.Fprintf(stdout, "OK: %d events (%s, ids %d..%d, filter %s) signed by %s\n", m.Count, m.File, m.FirstID, m.LastID, m.Filter, AuditKeyName())
	return nil
}

// AuditKeyName is the name of the audit signing key in notes.
func AuditKeyName() string { return audit.KeyName }

// reorder moves flags after positional arguments to the front, so
// "verify-export DIR --key K" works like "verify-export --key K DIR".
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			flags = append(flags, args[i])
			if !strings.Contains(args[i], "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, args[i])
	}
	return append(flags, pos...)
}

// runAuditPublicKey prints the active verifier key (--all: every key with
// its id and state). It only reads.
func runAuditPublicKey(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("audit public-key", stderr)
	all := fs.Bool("all", false, "list every key, retired ones included, with ids and states")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	env, err := openEnv(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	keys, err := audit.PublicKeys(context.Background(), env.secrets)
	if errors.Is(err, audit.ErrNoKey) {
		return fmt.Errorf("no audit key yet: it is created when the gateway (or any command that writes the log) first runs")
	}
	if err != nil {
		return err
	}
	if !*all {
		fmt.Fprintln(stdout, keys[0].Verifier)
		return nil
	}
	for _, k := range keys {
		state := "active"
		if !k.Active() {
			state = "retired " + k.Retired.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%s %s %s\n", k.ID, state, k.Verifier)
	}
	return nil
}

// runAuditTail prints the newest events. It only reads.
func runAuditTail(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("audit tail", stderr)
	n := fs.Int("n", 20, "number of events")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	env, err := openEnv(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	var evs []audit.StoredEvent
	err = audit.QueryEvents(context.Background(), env.db.DB, audit.Filter{Limit: max(*n, 1), Desc: true}, func(ev audit.StoredEvent) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		fmt.Fprintf(stdout, "%d %s %-16s user=%s target=%s login=%s session=%s reason=%q details=%s\n", ev.ID,
			ev.Time.Format(time.RFC3339), ev.Type, ev.User, ev.Target, ev.Login, ev.SessionID, ev.Reason, ev.DetailsJSON)
	}
	return nil
}

// runAuditRotateKey makes a new audit signing key active; the old key's
// public half is kept so everything it signed still verifies.
func runAuditRotateKey(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("audit rotate-key", stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	env, l, err := openAudit(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	defer l.Close()
	old, cur, err := l.RotateKey(context.Background(), osUser())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit key rotated: %s retired (public key kept), %s active\nnew verifier key for auditors:\n%s\n",
		old.ID, cur.ID, cur.Verifier)
	return nil
}

// runAuditPrune applies the configured retention now (the gateway also runs
// it daily). It removes only whole ranges, after a signed prune event.
func runAuditPrune(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("audit prune", stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	env, l, err := openAudit(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	defer l.Close()
	ret := app.RetentionOf(env.cfg)
	if ret.Audit == 0 && ret.Recordings == 0 {
		fmt.Fprintln(stdout, "retention is not configured (retention.audit, retention.recordings): nothing is ever pruned")
		return nil
	}
	recs, err := openRecordings(env)
	if err != nil {
		return err
	}
	defer recs.Close()
	res, err := recorder.ApplyRetention(context.Background(), ret, l, recs, time.Now(), osUser())
	for _, r := range res {
		fmt.Fprintln(stdout, r.String())
	}
	return err
}
