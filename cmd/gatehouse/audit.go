package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/recorder"
)

func init() {
	register(command{name: "audit", summary: "audit log: export, verify, verify-export, public-key, tail", run: func(args []string, stdout, stderr io.Writer) error {
		return subcommand("audit", args, stdout, stderr, map[string]func([]string, io.Writer, io.Writer) error{
			"export": runAuditExport, "verify": runAuditVerify, "verify-export": runAuditVerifyExport,
			"public-key": runAuditPublicKey, "tail": runAuditTail,
		})
	}})
}

func openAudit(cfgPath string) (*appEnv, *recorder.AuditLog, error) {
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
	m, err := l.Export(context.Background(), recorder.ExportOptions{Format: *format, Dir: dir, Actor: osUser(),
		Filter: recorder.Filter{Since: s, Until: u, User: *user, Target: *target, Type: *typ}})
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

func runAuditVerify(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("audit verify", stderr)
	cpFile := fs.String("checkpoint", "", "an earlier checkpoint note kept elsewhere (detects truncation and rewrites)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var extra []byte
	if *cpFile != "" {
		b, err := os.ReadFile(*cpFile)
		if err != nil {
			return err
		}
		extra = b // every note in it is checked, not only the last
	}
	env, err := openEnv(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	// Read the key without opening the log: verify must not append or sign
	// a checkpoint over a log that may have been tampered with.
	vkey, err := recorder.AuditVerifierKey(env.secrets)
	if err != nil {
		return err
	}
	rep, err := recorder.VerifyChain(context.Background(), env.db.DB, vkey, extra)
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
	m, err := recorder.VerifyExport(fs.Arg(0), k)
	if err != nil {
		fmt.Fprintln(stdout, "FAILED:", err)
		return exitError{1}
	}
	fmt.Fprintf(stdout, "OK: %d events (%s, ids %d..%d, filter %s) signed by %s\n", m.Count, m.File, m.FirstID, m.LastID, m.Filter, AuditKeyName())
	return nil
}

// AuditKeyName is the name of the audit signing key in notes.
func AuditKeyName() string { return recorder.AuditKeyName }

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

func runAuditPublicKey(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("audit public-key", stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	env, l, err := openAudit(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	defer l.Close()
	fmt.Fprintln(stdout, l.VerifierKey())
	return nil
}

func runAuditTail(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("audit tail", stderr)
	n := fs.Int("n", 20, "number of events")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	env, l, err := openAudit(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	defer l.Close()
	evs, err := l.Query(context.Background(), recorder.Filter{Limit: *n, Desc: true})
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
