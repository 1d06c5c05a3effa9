package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// runCARotate starts a rotation (a next key, published at once, signing
// after --overlap) or, with --retire, retires the previous key.
func runCARotate(args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("ca rotate", stderr)
	user := fs.Bool("user", false, "rotate the user CA (people's certificates)")
	session := fs.Bool("session", false, "rotate the session CA (what targets trust)")
	host := fs.Bool("host", false, "rotate the host CA (what clients trust)")
	overlap := fs.Duration("overlap", 24*time.Hour, "how long the next key is published before it starts signing")
	retire := fs.Bool("retire", false, "retire the previous key (after the switch, once nothing needs it)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if countTrue(*user, *session, *host) != 1 || *overlap < 0 {
		fmt.Fprintln(stderr, "usage: gatehouse ca rotate --user|--session|--host [--overlap 24h] [--retire]")
		return errUsage
	}
	ca := map[bool]string{*user: "user", *session: "session", *host: "host"}[true]
	env, a, err := loadAuthority(*cfg)
	if err != nil {
		return err
	}
	defer env.Close()
	ctx := context.Background()
	var k auth.CAKey
	var what string
	if *retire {
		if k, err = a.Retire(ctx, ca); err != nil {
			return err
		}
		what = fmt.Sprintf("retired the %s CA key %s", ca, k.KeyID)
		fmt.Fprintf(stdout, "%s; publish `gatehouse ca public --%s` again without it\n", what, publicFlag(ca))
	} else {
		if k, err = a.Rotate(ctx, ca, *overlap); err != nil {
			return err
		}
		what = fmt.Sprintf("next %s CA key %s, signing from %s", ca, k.KeyID, k.ActivateAt.Format(time.RFC3339))
		fmt.Fprintf(stdout, "%s\npublish both keys now: gatehouse ca public --%s\n", what, publicFlag(ca))
	}
	log, err := app.OpenAudit(&app.Env{Config: env.cfg, DB: env.db, Secrets: env.secrets}, nil)
	if err != nil {
		return err
	}
	defer log.Close()
	return log.Append(ctx, audit.Event{Type: audit.EventAdminChange, User: osUser(), Reason: what,
		Details: map[string]any{"ca": ca, "key_id": k.KeyID, "state": k.State}})
}

func publicFlag(ca string) string {
	if ca == "session" {
		return "target"
	}
	return ca
}

// printCAKeys lists every key of every CA with its id and state.
func printCAKeys(a *auth.Authority, w io.Writer) error {
	fmt.Fprintf(w, "%-8s %-52s %-9s %s\n", "CA", "KEY ID", "STATE", "SIGNS FROM")
	for _, ca := range []string{"user", "session", "host"} {
		keys, err := a.CAKeys(context.Background(), ca)
		if err != nil {
			return err
		}
		for _, k := range keys {
			from := ""
			if k.State == auth.KeyNext {
				from = k.ActivateAt.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%-8s %-52s %-9s %s\n", ca, k.KeyID, k.State, from)
		}
	}
	return nil
}
