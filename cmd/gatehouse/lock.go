package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// runLock locks a user: new connections are refused at once, and a running
// gateway ends the user's live sessions within a few seconds.
func runLock(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("admin lock", stderr)
	user := fs.String("user", "", "Gatehouse user name")
	reason := fs.String("reason", "", "why (shown to the user and audited)")
	d := fs.Duration("for", 0, "how long (default: until unlocked)")
	if err := fs.Parse(args); err != nil || *user == "" || *reason == "" {
		fmt.Fprintln(stderr, "usage: gatehouse admin lock --user NAME --reason TEXT [--for 1h]")
		return errUsage
	}
	return changeLock(*cfgPath, stdout, func(ctx context.Context, l *policy.Locks) (audit.Event, error) {
		err := l.Lock(ctx, *user, *reason, osUser(), *d)
		return audit.Event{Type: audit.EventLock, User: osUser(), Reason: "locked " + *user + ": " + *reason,
			Details: map[string]any{"locked_user": *user, "for": d.String()}}, err
	}, fmt.Sprintf("locked %s; live sessions end within %s", *user, 5*time.Second))
}

func runUnlock(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("admin unlock", stderr)
	user := fs.String("user", "", "Gatehouse user name")
	if err := fs.Parse(args); err != nil || *user == "" {
		fmt.Fprintln(stderr, "usage: gatehouse admin unlock --user NAME")
		return errUsage
	}
	return changeLock(*cfgPath, stdout, func(ctx context.Context, l *policy.Locks) (audit.Event, error) {
		return audit.Event{Type: audit.EventLock, User: osUser(), Reason: "unlocked " + *user,
			Details: map[string]any{"unlocked_user": *user}}, l.Unlock(ctx, *user)
	}, "unlocked "+*user)
}

// changeLock applies a lock change and audits it (fail closed: no audit, no
// change reported as done).
func changeLock(cfgPath string, stdout io.Writer, do func(context.Context, *policy.Locks) (audit.Event, error), done string) error {
	env, err := openEnv(cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	log, err := app.OpenAudit(&app.Env{Config: env.cfg, DB: env.db, Secrets: env.secrets}, nil)
	if err != nil {
		return err
	}
	defer log.Close()
	ctx := context.Background()
	ev, err := do(ctx, policy.NewLocks(env.db.DB))
	if err != nil {
		return err
	}
	if err := log.Append(ctx, ev); err != nil {
		return err
	}
	fmt.Fprintln(stdout, done)
	return nil
}
