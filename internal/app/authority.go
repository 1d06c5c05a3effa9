package app

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/hsm"
	"github.com/gatehouse/gatehouse/internal/secrets"
	"golang.org/x/crypto/ssh"
)

// LoadAuthority loads the CAs of env, with their keys on the PKCS#11 token
// when ca.pkcs11 is configured (generated there on first use). close
// releases the token; call it when the Authority is no longer used.
//
// With ca.pkcs11 no software CA key is created, loaded or used: a token
// that cannot be opened, or a key that cannot be found or made on it, is an
// error (fail closed), never a fallback to keys sealed in the database.
func LoadAuthority(ctx context.Context, env *Env) (a *auth.Authority, close func(), err error) {
	p := env.Config.CA.PKCS11
	if p.Module == "" {
		if a, err = auth.LoadAuthority(ctx, env.Secrets, env.DB.DB); err != nil {
			return nil, nil, err
		}
		// Sealed keys rotate (gatehouse ca rotate).
		if err := a.EnableRotation(ctx, auth.SealedKeys{Secrets: env.Secrets}); err != nil {
			return nil, nil, err
		}
		return a, func() {}, nil
	}
	tok, err := openToken(p)
	if err != nil {
		return nil, nil, err
	}
	if a, err = loadTokenAuthority(ctx, env, tok); err != nil {
		tok.Close()
		return nil, nil, err
	}
	return a, func() { tok.Close() }, nil
}

// loadTokenAuthority loads the Authority whose CA keys are tok's, creating
// them there on first use.
func loadTokenAuthority(ctx context.Context, env *Env, tok *hsm.Token) (*auth.Authority, error) {
	// An install whose user CA key is on the token but not its session CA
	// key gets one now: its targets must be told (SessionCAMigrated).
	_, errUser := tok.Signer(hsm.KeyLabel("user"), false)
	_, errSession := tok.Signer(hsm.KeyLabel("session"), false)
	migrated := errUser == nil && errSession != nil
	var s auth.CASigners
	for _, k := range []struct {
		ca  string
		dst *ssh.Signer
	}{{"user", &s.User}, {"session", &s.Session}, {"host", &s.Host}} {
		var err error
		if *k.dst, err = tok.Signer(hsm.KeyLabel(k.ca), true); err != nil {
			return nil, err
		}
	}
	a, err := auth.LoadAuthorityWithSigners(ctx, env.Secrets, env.DB.DB, s, migrated)
	if err != nil {
		return nil, err
	}
	// Token keys rotate on the token.
	if err := a.EnableRotation(ctx, tokenKeys{tok}); err != nil {
		return nil, err
	}
	return a, nil
}

// warnUnusedSealedCAKeys tells the operator of an install moved to
// ca.pkcs11 that its earlier software CA keys are still sealed in the
// database: they sign nothing, but a target or client that still trusts
// them trusts a key that exists outside the token.
func (a *App) warnUnusedSealedCAKeys(ctx context.Context) {
	if a.Config.CA.PKCS11.Module == "" {
		return
	}
	names, err := auth.SealedCAKeys(ctx, a.Env.Secrets)
	if err != nil || len(names) == 0 {
		return
	}
	a.Log.Warn("software CA keys from before ca.pkcs11 are still sealed in the database; they sign nothing, "+
		"but remove them from every target's TrustedUserCAKeys and every client's @cert-authority line", "keys", names)
}

// tokenKeys is the auth.KeyStore of CA keys on a PKCS#11 token; a key's name
// is "pkcs11:" and its label.
type tokenKeys struct{ tok *hsm.Token }

func (k tokenKeys) Original(ca string) string { return "pkcs11:" + hsm.KeyLabel(ca) }

func (k tokenKeys) Load(ctx context.Context, name string) (ssh.Signer, error) {
	return k.tok.Signer(strings.TrimPrefix(name, "pkcs11:"), false)
}

func (k tokenKeys) Create(ctx context.Context, ca string) (string, ssh.Signer, error) {
	label := hsm.KeyLabel(ca) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s, err := k.tok.Signer(label, true)
	return "pkcs11:" + label, s, err
}

func (k tokenKeys) Destroy(ctx context.Context, name string) error {
	return k.tok.Delete(strings.TrimPrefix(name, "pkcs11:"))
}

// LoadMasterKey loads the master key of cfg: from GATEHOUSE_MASTER_KEY or
// the key file, or, with ca.pkcs11.wrap_master_key, from a key file the
// token's AES key unwraps (the token is closed again afterwards). create
// allows making a new key when there is none.
func LoadMasterKey(cfg *config.Config, create bool) (*secrets.Keyring, error) {
	p := cfg.CA.PKCS11
	if !p.WrapMasterKey {
		return secrets.LoadKeyringFrom(cfg.MasterKeyFile, create)
	}
	if err := secrets.CheckWrapped(cfg.MasterKeyFile); err != nil {
		return nil, err
	}
	tok, err := openToken(p)
	if err != nil {
		return nil, err
	}
	defer tok.Close()
	// A new wrapping key only for a new master key: an existing file was
	// wrapped by a key that must already be on this token.
	_, statErr := os.Stat(cfg.MasterKeyFile)
	wrap, err := tok.WrapAEAD(hsm.MasterWrapLabel, create && os.IsNotExist(statErr))
	if err != nil {
		return nil, err
	}
	return secrets.LoadWrappedKeyring(cfg.MasterKeyFile, wrap, create)
}

// WrapMasterKey encrypts cfg's plain master key file (or the key in
// GATEHOUSE_MASTER_KEY) with the token's wrapping key, in place.
func WrapMasterKey(cfg *config.Config) error {
	kr, err := secrets.LoadKeyringFrom(cfg.MasterKeyFile, false)
	if err != nil {
		return err
	}
	tok, err := openToken(cfg.CA.PKCS11)
	if err != nil {
		return err
	}
	defer tok.Close()
	wrap, err := tok.WrapAEAD(hsm.MasterWrapLabel, true)
	if err != nil {
		return err
	}
	return secrets.WriteWrapped(cfg.MasterKeyFile, kr.Key(), wrap)
}

func openToken(p config.PKCS11) (*hsm.Token, error) {
	if p.Module == "" {
		return nil, fmt.Errorf("ca.pkcs11 is not configured")
	}
	pin, err := os.ReadFile(p.PinFile)
	if err != nil {
		return nil, fmt.Errorf("ca.pkcs11.pin_file: %w", err)
	}
	return hsm.Open(hsm.Config{Module: p.Module, TokenLabel: p.TokenLabel, Pin: strings.TrimSpace(string(pin))})
}
