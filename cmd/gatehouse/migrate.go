package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

func init() {
	register(command{name: "migrate", summary: "copy a SQLite install into PostgreSQL and verify it: migrate --from sqlite:PATH --to postgres://...", run: runMigrate})
}

// runMigrate copies every table of a stopped SQLite install into a new
// PostgreSQL database in one transaction, then checks the copy: the same
// rows per table, and the audit chain verifies on the target with the
// install's own audit keys (sealed with its master key, which --config
// locates; the recordings directory is not moved).
func runMigrate(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("migrate", stderr)
	from := fs.String("from", "", "the SQLite database: sqlite:PATH")
	to := fs.String("to", "", "the PostgreSQL database: postgres://user@host/db (sslmode defaults to verify-full)")
	if err := fs.Parse(args); err != nil || !strings.HasPrefix(*from, "sqlite:") || *from == "sqlite:" ||
		!(strings.HasPrefix(*to, "postgres://") || strings.HasPrefix(*to, "postgresql://")) || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: gatehouse migrate --from sqlite:PATH --to postgres://... [--config FILE]")
		return errUsage
	}
	cfg, err := config.Load(config.PathFromEnv(*cfgPath))
	if err != nil {
		return err
	}
	kr, err := secrets.LoadKeyringFrom(cfg.MasterKeyFile, false)
	if err != nil {
		return fmt.Errorf("migrate: the master key of the install (to verify its audit log): %w", err)
	}
	ctx := context.Background()
	src, err := store.OpenURL(ctx, *from, cfg.DataDir, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := store.OpenURL(ctx, *to, cfg.DataDir, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer dst.Close()
	copied, err := store.CopyTo(ctx, src, dst)
	if err != nil {
		return err
	}
	return checkMigration(ctx, dst, copied, kr, stdout)
}

// checkMigration compares the rows per table on dst with those read from
// the source, and verifies the audit chain on dst.
func checkMigration(ctx context.Context, dst *store.DB, copied store.CopyCounts, kr *secrets.Keyring, stdout io.Writer) error {
	got, err := store.CountRows(ctx, dst)
	if err != nil {
		return err
	}
	for t, n := range copied {
		if got[t] != n {
			fmt.Fprintf(stdout, "FAILED: %s has %d rows in the source and %d in the target\n", t, n, got[t])
			return exitError{1}
		}
	}
	opts, err := audit.VerifyOptionsFor(ctx, secrets.NewStore(dst.DB, kr))
	if err != nil {
		return err
	}
	opts.Interval = -1
	rep, err := audit.Verify(ctx, dst.DB, opts)
	if err != nil {
		return err
	}
	if !rep.OK {
		fmt.Fprintf(stdout, "FAILED: the audit log does not verify on the target: %s\n", rep)
		return exitError{1}
	}
	fmt.Fprintf(stdout, "copied %d audit events, %d sessions, %d recordings' metadata; row counts match in all %d tables; audit log verifies on the target (%s)\n",
		got["audit_events"], got["sessions"], got["recordings"], len(got), rep)
	fmt.Fprintln(stdout, "set database.url to the target, keep data_dir's recordings and master key, and start gatehouse serve")
	return nil
}
