package config

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ParseAuthorizedKey parses one public key in authorized_keys form
// ("ssh-ed25519 AAAA... comment"), as used by host_key and host_ca.
func ParseAuthorizedKey(s string) (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(s)))
	if err != nil {
		return nil, fmt.Errorf("not a public key in authorized_keys form (%v)", err)
	}
	return k, nil
}
