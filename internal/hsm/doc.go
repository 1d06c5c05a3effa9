// Package hsm keeps Gatehouse's certificate authority keys in a PKCS#11
// token (a hardware security module, or SoftHSM2 in tests) and signs with
// them there: the private keys are generated on the token as sensitive,
// non-extractable objects and never leave it.
//
// PKCS#11 modules are C libraries, so this needs a cgo build; a binary built
// with CGO_ENABLED=0 (the FROM scratch image) reports that instead.
package hsm

// Config names the token. Module is the PKCS#11 library path
// (e.g. /usr/lib/softhsm/libsofthsm2.so); TokenLabel the token's label; Pin
// the user PIN.
type Config struct {
	Module     string
	TokenLabel string
	Pin        string
}

// KeyLabel is the token label of the key for a CA ("user", "session",
// "host").
func KeyLabel(ca string) string { return "gatehouse-" + ca + "-ca" }

// MasterWrapLabel is the token label of the AES key that wraps the master
// key when ca.pkcs11.wrap_master_key is set.
const MasterWrapLabel = "gatehouse-master-wrap"
