package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
)

func init() {
	register(command{name: "ca", summary: "print the CA public keys targets and clients trust", run: func(args []string, stdout, stderr io.Writer) error {
		return subcommand("ca", args, stdout, stderr, map[string]func([]string, io.Writer, io.Writer) error{
			"public": runCAPublic, "rotate": runCARotate, "wrap-master-key": runWrapMasterKey,
		})
	}})
	register(command{name: "admin", summary: "administration: issue-cert (bootstrap / break-glass), lock, unlock", run: func(args []string, stdout, stderr io.Writer) error {
		return subcommand("admin", args, stdout, stderr, map[string]func([]string, io.Writer, io.Writer) error{
			"issue-cert": runIssueCert, "lock": runLock, "unlock": runUnlock,
		})
	}})
}

// loadAuthority opens the environment and the CAs. Whichever command first
// loads the CAs of an install from before the session CA tells the operator
// to move targets to it.
func loadAuthority(cfgPath string) (*appEnv, *auth.Authority, error) {
	env, err := openEnv(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	// The token (ca.pkcs11) stays open until the command exits.
	a, _, err := app.LoadAuthority(context.Background(), &app.Env{Config: env.cfg, DB: env.db, Secrets: env.secrets})
	if err != nil {
		env.Close()
		return nil, nil, err
	}
	a.MaxUserCertTTL = env.cfg.Certs.MaxUserTTL
	if a.SessionCAMigrated() {
		fmt.Fprintln(os.Stderr, "gatehouse: warning:", auth.SessionCAMigrationNotice)
	}
	return env, a, nil
}

func runCAPublic(args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("ca public", stderr)
	target := fs.Bool("target", false, "print the session CA: the one line for targets' TrustedUserCAKeys")
	user := fs.Bool("user", false, "print the user CA (trusted by the gateway only; for the record, never for targets)")
	host := fs.Bool("host", false, "print the host CA as a known_hosts @cert-authority line for the gateway's names and the configured targets (for clients)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if n := countTrue(*target, *user, *host); n > 1 {
		fmt.Fprintln(stderr, "usage: gatehouse ca public [--target | --user | --host]   (no flag: every CA key with its id and state)")
		return errUsage
	}
	env, a, err := loadAuthority(*cfg)
	if err != nil {
		return err
	}
	defer env.Close()
	ca := map[bool]string{*target: "session", *user: "user", *host: "host"}[true]
	if ca == "" {
		return printCAKeys(a, stdout)
	}
	// During a rotation every published key is printed: targets and clients
	// trust old and new until the old one is retired.
	keys, err := a.PublishedKeys(context.Background(), ca)
	if err != nil {
		return err
	}
	for _, k := range keys {
		switch ca {
		case "session":
			fmt.Fprintf(stdout, "%s gatehouse-session-ca\n", authorizedLine(k.Public))
		case "user":
			fmt.Fprintf(stdout, "%s gatehouse-user-ca\n", authorizedLine(k.Public))
		default:
			fmt.Fprintln(stdout, env.cfg.KnownHostsCALine(k.Public, ""))
		}
	}
	return nil
}

// authorizedLine is k in authorized_keys form without the newline.
func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func runIssueCert(args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("admin issue-cert", stderr)
	user := fs.String("user", "", "Gatehouse user name (the certificate principal)")
	pubFile := fs.String("pubkey", "", "the user's public key file (e.g. ~/.ssh/id_ed25519.pub)")
	ttl := fs.Duration("ttl", 8*time.Hour, "certificate lifetime (capped by certificates.max_user_ttl)")
	out := fs.String("out", "", "where to write the certificate (default: next to --pubkey as NAME-cert.pub)")
	groups := fs.String("groups", "", "comma-separated groups to embed (for group bindings)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *user == "" || *pubFile == "" {
		fmt.Fprintln(stderr, "usage: gatehouse admin issue-cert --user NAME --pubkey FILE [--ttl 8h] [--out FILE]")
		return errUsage
	}
	if !auth.ValidUserName(*user) {
		return auth.ErrBadUserName
	}
	b, err := os.ReadFile(*pubFile)
	if err != nil {
		return err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return fmt.Errorf("%s: not an SSH public key: %v", *pubFile, err)
	}
	env, a, err := loadAuthority(*cfg)
	if err != nil {
		return err
	}
	defer env.Close()
	if *ttl <= 0 || *ttl > env.cfg.Certs.MaxUserTTL {
		return fmt.Errorf("--ttl %s: must be positive and at most certificates.max_user_ttl (%s)", *ttl, env.cfg.Certs.MaxUserTTL)
	}
	id := auth.Identity{User: *user}
	if *groups != "" {
		id.Groups = strings.Split(*groups, ",")
	}
	cert, err := a.IssueUserCert(context.Background(), auth.UserCertRequest{Identity: id, PublicKey: pub, TTL: *ttl})
	if err != nil {
		return err
	}
	if err := auditAdmin(env, id.User, "admin issue-cert", cert); err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = strings.TrimSuffix(*pubFile, ".pub") + "-cert.pub"
	}
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (user %s, serial %d, valid until %s)\n", path, *user, cert.Serial,
		time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339))
	return nil
}
