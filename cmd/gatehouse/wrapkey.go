package main

import (
	"fmt"
	"io"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
)

// runWrapMasterKey encrypts an install's plain master key file with an AES
// key generated on the PKCS#11 token (ca.pkcs11), in place, so the file alone
// no longer opens the sealed CA keys, TOTP secrets and recordings.
func runWrapMasterKey(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("ca wrap-master-key", stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: gatehouse ca wrap-master-key   (needs ca.pkcs11 in the configuration)")
		return errUsage
	}
	cfg, err := config.Load(config.PathFromEnv(*cfgPath))
	if err != nil {
		return err
	}
	if err := app.WrapMasterKey(cfg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrapped %s with the token's key %q; set ca.pkcs11.wrap_master_key: true and keep the token's PIN apart from the data directory\n",
		cfg.MasterKeyFile, "gatehouse-master-wrap")
	return nil
}
