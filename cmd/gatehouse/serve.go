package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

func init() {
	register(command{name: "serve", summary: "run the gateway (SSH and web)", run: runServe})
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := config.Load(config.PathFromEnv(*cfgPath))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := app.Start(cfg, log)
	if err != nil {
		return err
	}
	if app.MasterKeyBesideData(cfg) {
		log.Warn("the master key is a file in data_dir, next to the database it protects: any copy of the data directory (backup, snapshot, stolen volume) then opens every CA key, TOTP secret and recording; set master_key_file outside data_dir or GATEHOUSE_MASTER_KEY (docs/deploy.md)",
			"master_key_file", cfg.MasterKeyFile)
	}
	fmt.Fprintf(stdout, "gatehouse: SSH on %s\n", a.SSHAddr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
wait:
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				a.Reload("SIGHUP") // logs and audits either way
				continue
			}
			log.Info("shutting down", "signal", s.String())
			break wait
		case err := <-a.Err():
			log.Error("server failed", "err", err)
			a.Close(context.Background())
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.SSH.ShutdownGrace)
	defer cancel()
	return a.Close(ctx)
}

// auditAdmin records a certificate issued from the command line.
func auditAdmin(env *appEnv, user, via string, cert *ssh.Certificate) error {
	log, err := app.OpenAudit(&app.Env{Config: env.cfg, DB: env.db, Secrets: env.secrets}, nil)
	if err != nil {
		return err
	}
	defer log.Close()
	return log.Append(context.Background(), audit.Event{Type: audit.EventCertIssued, User: user,
		KeyFingerprint: ssh.FingerprintSHA256(cert.Key), CertSerial: cert.Serial, Reason: via,
		Details: map[string]any{"principals": strings.Join(cert.ValidPrincipals, ","), "key_id": cert.KeyId,
			"valid_before": time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339)}})
}
