package auth

import "golang.org/x/crypto/ssh"

// CASigners are CA keys held outside the database (a PKCS#11 token). For
// LoadAuthorityWithSigners all three are required; for UseCASigners a nil
// field keeps the CA's current key.
type CASigners struct {
	User, Session, Host ssh.Signer
}

// UseCASigners makes the CAs sign with s. Call it right after loading the
// Authority, before it is shared; public keys (ca public, known_hosts lines)
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
