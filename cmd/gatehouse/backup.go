package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/backup"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// Audit event types of backups (the restored log records its own restore).
const (
	eventBackupCreated  = "backup.created"
	eventBackupRestored = "backup.restored"
)

func init() {
	register(command{name: "backup", summary: "write an encrypted, signed backup (online): backup --out FILE", run: runBackup})
	register(command{name: "restore", summary: "restore a backup into an empty data directory: restore FILE", run: runRestore})
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runBackup(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("backup", stderr)
	out := fs.String("out", "", "backup file to write (0600)")
	var recips stringList
	fs.Var(&recips, "recipient", "encrypt to this age recipient (age1...) instead of the master-key-derived key; repeatable")
	if err := fs.Parse(args); err != nil || *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: gatehouse backup --out FILE [--recipient age1...]")
		return errUsage
	}
	var rs []age.Recipient
	for _, r := range recips {
		p, err := age.ParseX25519Recipient(r)
		if err != nil {
			return fmt.Errorf("--recipient %q is not an age X25519 recipient (age1...)", r)
		}
		rs = append(rs, p)
	}
	env, l, err := openAudit(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	defer l.Close()
	if env.db.IsPostgres() {
		return errors.New("backup: gatehouse backup covers the embedded SQLite database; with database.url on PostgreSQL, back up the database with pg_dump (or your provider's snapshots) and recording.dir and the master key separately")
	}
	ctx := context.Background()
	m, err := backup.Write(ctx, backup.Source{DB: env.db.DB, RecordingsDir: env.cfg.Recording.Dir,
		Keyring: env.secrets.Keyring(), Recipients: rs}, *out)
	if err != nil {
		return err
	}
	if err := l.Append(ctx, audit.Event{Type: eventBackupCreated, User: osUser(), Reason: "backup written (cli)",
		Details: map[string]any{"file": *out, "database_sha256": m.DatabaseSHA256, "recordings": m.Recordings,
			"operator_recipients": len(rs)}}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: database %d bytes (sha256 %s), %d recording files (%d bytes)\n",
		*out, m.DatabaseBytes, m.DatabaseSHA256[:16], m.Recordings, m.RecordingBytes)
	fmt.Fprintf(stdout, "signed with %s (derived from the master key); keep the master key apart from the backup\n",
		backup.SignerPublicKey(env.secrets.Keyring()))
	return nil
}

func runRestore(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("restore", stderr)
	identity := fs.String("identity", "", "age identity file, for a backup made with --recipient")
	if err := fs.Parse(reorder(args)); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: gatehouse restore FILE [--identity FILE]")
		return errUsage
	}
	cfg, err := config.Load(config.PathFromEnv(*cfgPath))
	if err != nil {
		return err
	}
	kr, err := existingKeyring(cfg)
	if err != nil {
		return err
	}
	dst := backup.Target{DBPath: filepath.Join(cfg.DataDir, "gatehouse.db"), RecordingsDir: cfg.Recording.Dir, Keyring: kr}
	if *identity != "" {
		f, err := os.Open(*identity)
		if err != nil {
			return err
		}
		dst.Identities, err = age.ParseIdentities(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--identity %s: %w", *identity, err)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	m, err := backup.Restore(context.Background(), fs.Arg(0), dst)
	if err != nil {
		return err
	}
	env, l, err := openAudit(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	defer l.Close()
	if err := l.Append(context.Background(), audit.Event{Type: eventBackupRestored, User: osUser(), Reason: "backup restored (cli)",
		Details: map[string]any{"file": fs.Arg(0), "backup_created": m.Created.Format(time.RFC3339), "database_sha256": m.DatabaseSHA256}}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored the backup of %s into %s: %d recording files; check it with: gatehouse audit verify\n",
		m.Created.Format("2006-01-02 15:04:05 UTC"), cfg.DataDir, m.Recordings)
	return nil
}

// existingKeyring loads the master key without creating one: a restore needs
// the key of the gateway that made the backup.
func existingKeyring(cfg *config.Config) (*secrets.Keyring, error) {
	if os.Getenv(secrets.EnvMasterKey) == "" {
		if _, err := os.Stat(cfg.MasterKeyFile); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("restore needs the master key of the gateway that made the backup: set %s or put its key file at %s",
				secrets.EnvMasterKey, cfg.MasterKeyFile)
		}
	}
	return app.LoadMasterKey(cfg, false)
}
