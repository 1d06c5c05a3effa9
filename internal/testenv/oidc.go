package testenv

import (
	"net"
	"net/http"
	"testing"

	"github.com/gatehouse/gatehouse/internal/demoidp"
)

// OIDCProvider is a real OpenID Provider (github.com/zitadel/oidc/v3, an
// OpenID-certified library) on loopback, with its own login page (restyled
// by internal/demoidp, as in the demo), users, signing keys, discovery, JWKS
// and code flow with PKCE.
type OIDCProvider struct {
	Issuer string
	srv    *http.Server
	ln     net.Listener
}

// The provider's preset user the tests log in as.
const (
	OIDCUser     = "test-user2"
	OIDCPassword = "verysecure"
	OIDCSubject  = "id2"
)

// StartOIDCProvider starts the provider; it stops when the test ends.
func StartOIDCProvider(t testing.TB) *OIDCProvider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &OIDCProvider{Issuer: "http://" + ln.Addr().String(), ln: ln}
	p.srv = &http.Server{Handler: demoidp.Handler(p.Issuer)}
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

// RegisterWebClient registers a confidential client with its redirect URIs.
func (p *OIDCProvider) RegisterWebClient(id, secret string, redirectURIs ...string) {
	demoidp.RegisterClient(id, secret, redirectURIs...)
}

// Stop takes the provider down (for "IdP down" tests).
func (p *OIDCProvider) Stop() { p.srv.Close() }
