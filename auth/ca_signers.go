package auth

import "golang.org/x/crypto/ssh"

// CASigners are CA keys held outside the database (a PKCS#11 token). A nil
// field keeps the key sealed in the database.
type CASigners struct {
	User, Session, Host ssh.Signer
}

// UseCASigners makes the CAs sign with s. Call it right after LoadAuthority,
// before the Authority is shared; public keys (ca public, known_hosts lines)
// follow.
func (a *Authority) UseCASigners(s CASigners) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.User != nil {
		a.userCA = s.User
	}
	if s.Session != nil {
		a.sessionCA = s.Session
	}
	if s.Host != nil {
		a.hostCA = s.Host
		a.hostCerts = map[string]ssh.Signer{}
	}
}
