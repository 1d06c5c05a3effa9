package auth

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/usererr"
)

// Certificate extensions Gatehouse puts on user certificates. Extension names
// with '@' are vendor extensions that OpenSSH ignores.
const (
	ExtGroups  = "groups@gatehouse.dev"          // comma-separated OIDC groups
	ExtIssuer  = "oidc-issuer@gatehouse.dev"     // OIDC issuer URL
	ExtSubject = "oidc-subject@gatehouse.dev"    // OIDC subject
	ExtMFAAt   = "mfa-verified-at@gatehouse.dev" // RFC 3339 time of the TOTP check
)

// KeyIDPrefix starts the KeyId of every user certificate.
const KeyIDPrefix = "gatehouse:"

// Identity is who a user is, as far as the gateway and policy are concerned.
type Identity struct {
	User    string   // Gatehouse user name (certificate principal)
	Issuer  string   // OIDC issuer; empty for admin-issued certificates
	Subject string   // OIDC subject
	Groups  []string // OIDC groups
	MFAAt   time.Time
}

// userNameRE is the grammar of Gatehouse user names: they appear in
// certificate principals and KeyIds and must not contain ',' or spaces.
// '@' is allowed: many identity providers use e-mail addresses as names.
var userNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@+-]{0,127}$`)

// ErrBadUserName is returned for a user name outside the grammar.
var ErrBadUserName = usererr.New("auth", badUserName)

const badUserName = "user names are 1-128 letters, digits, '.', '_', '@', '+' or '-'"

// ValidUserName reports whether name is a valid Gatehouse user name.
func ValidUserName(name string) bool { return userNameRE.MatchString(name) }

// IdentityFromCert reads the identity out of a user certificate that has
// already been checked against the user CA.
func IdentityFromCert(cert *ssh.Certificate) (Identity, error) {
	if len(cert.ValidPrincipals) != 1 {
		return Identity{}, fmt.Errorf("%w [has %d principals]", ErrCertPrincipal, len(cert.ValidPrincipals))
	}
	id := Identity{
		User:    cert.ValidPrincipals[0],
		Issuer:  cert.Extensions[ExtIssuer],
		Subject: cert.Extensions[ExtSubject],
	}
	if !ValidUserName(id.User) {
		return Identity{}, ErrBadUserName
	}
	if g := cert.Extensions[ExtGroups]; g != "" {
		id.Groups = strings.Split(g, ",")
	}
	if t := cert.Extensions[ExtMFAAt]; t != "" {
		mt, err := time.Parse(time.RFC3339, t)
		if err != nil {
			return Identity{}, usererr.Wrap(err, "auth", "certificate rejected (bad "+ExtMFAAt+" extension)")
		}
		id.MFAAt = mt
	}
	return id, nil
}
