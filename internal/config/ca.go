package config

// CA configures where the certificate authorities' keys live.
type CA struct {
	// PKCS11 moves the user, session and host CA keys into a PKCS#11 token.
	// An empty Module means the keys are sealed with the master key in the
	// database.
	PKCS11 PKCS11 `yaml:"pkcs11"`
}

// PKCS11 names a PKCS#11 token. The CA keys are generated on it (ECDSA
// P-256, sensitive, not extractable) and sign there.
type PKCS11 struct {
	// Module is the path of the PKCS#11 library. Empty means no token.
	Module string `yaml:"module"`
	// TokenLabel is the label of the token. Required with Module.
	TokenLabel string `yaml:"token_label"`
	// PinFile holds the token's user PIN. Required with Module.
	PinFile string `yaml:"pin_file"`
	// WrapMasterKey keeps the master key file encrypted by an AES key on
	// the token (label gatehouse-master-wrap), so the file alone opens
	// nothing. False means the file holds the plain key.
	WrapMasterKey bool `yaml:"wrap_master_key"`
}

func (c *Config) validateCA() error {
	p := c.CA.PKCS11
	if p.Module == "" {
		if p.TokenLabel != "" || p.PinFile != "" || p.WrapMasterKey {
			return c.fail("ca.pkcs11.module", "required when ca.pkcs11 is set")
		}
		return nil
	}
	if p.TokenLabel == "" {
		return c.fail("ca.pkcs11.token_label", "required with ca.pkcs11.module")
	}
	if p.PinFile == "" {
		return c.fail("ca.pkcs11.pin_file", "required with ca.pkcs11.module")
	}
	return nil
}
