// Package sshalg holds the SSH defaults Gatehouse starts from: the algorithm
// lists of both SSH legs and the grammar of target logins. It is a leaf, so
// the configuration loader (which validates against it) and the gateway
// (which applies it when a setting is left empty) share one definition
// without the gateway depending on the configuration file.
package sshalg

import "golang.org/x/crypto/ssh"

// Default SSH algorithms, for both legs (clients to the gateway, the gateway
// to targets) and the ProxyJump inner server. They pass ssh-audit with no
// "fail" and use no SHA-1: no diffie-hellman-*-sha1, no NIST-curve key
// exchange, encrypt-then-MAC MACs only (AEAD ciphers use none), no ssh-rsa
// (SHA-1) signatures.
var (
	DefaultKeyExchanges = []string{
		ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519, "curve25519-sha256@libssh.org",
		ssh.KeyExchangeDH16SHA512,
	}
	DefaultCiphers = []string{
		ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305,
		ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR,
	}
	DefaultMACs = []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM}
	// DefaultHostKeyTypes: the gateway's own host key is Ed25519, so only
	// the Ed25519 types are offered to clients; RSA (SHA-2 signatures only)
	// is accepted from targets whose pinned host key is RSA. ECDSA (NIST
	// curves, an ssh-audit "fail") must be listed explicitly; a target
	// pinned to a key type not listed is a configuration error.
	DefaultHostKeyTypes = []string{
		ssh.CertAlgoED25519v01, ssh.KeyAlgoED25519,
		ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
	}
)

// DefaultLoginPattern is the grammar of target logins (the part before the
// first '@'): lower case only, so "ROOT" cannot slip past a deny on "root"
// at a target whose account lookup ignores case.
const DefaultLoginPattern = `^[a-z_][a-z0-9_.-]*$`
