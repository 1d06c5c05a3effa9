package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/internal/usererr"
)

// OIDCConfig configures the OpenID Connect relying party.
type OIDCConfig struct {
	Issuer, ClientID, ClientSecret string
	RedirectURL                    string   // the gateway's /oidc/callback
	Scopes                         []string // besides "openid"
	GroupsClaim                    string   // e.g. "groups"
	UsernameClaim                  string   // e.g. "preferred_username"
	MaxClockSkew                   time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// HTTPClient reaches the provider; nil means a client with a 10s timeout.
	HTTPClient *http.Client
}

// SigningAlgs are the ID token algorithms accepted: asymmetric only, never
// "none" or HMAC (a client secret must not be able to mint identities).
var SigningAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256,
	oidc.PS384, oidc.PS512, oidc.EdDSA}

// Errors of the OIDC login, for the user-facing page and the audit log.
var (
	ErrIdPUnavailable = usererr.New("auth", "the identity provider cannot be reached; try again shortly (existing certificates keep working)")
	ErrStateMismatch  = usererr.New("auth", "login state does not match (expired or replayed login); start the login again")
	ErrNonceMismatch  = usererr.New("auth", "ID token nonce does not match this login")
	ErrBadIDToken     = usererr.New("auth", "the identity provider's ID token was rejected")
)

// OIDC is the relying party. Discovery happens on first use, so the gateway
// starts (and certificate holders keep working) while the IdP is down.
type OIDC struct {
	cfg OIDCConfig

	// mu protects the following.
	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

// NewOIDC returns a relying party for cfg.
func NewOIDC(cfg OIDCConfig) *OIDC {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = time.Minute
	}
	return &OIDC{cfg: cfg}
}

func (o *OIDC) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.cfg.HTTPClient)
}

// discover loads the provider metadata and keys once.
func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, o.verifier, nil
	}
	p, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%v)", ErrIdPUnavailable, err)
	}
	o.provider = p
	o.verifier = p.VerifierContext(o.ctx(context.Background()), o.verifierConfig())
	return o.provider, o.verifier, nil
}

func (o *OIDC) verifierConfig() *oidc.Config {
	return &oidc.Config{ClientID: o.cfg.ClientID, SupportedSigningAlgs: SigningAlgs,
		// Expiry is checked by go-oidc against Now shifted back by the
		// allowed skew (it has no skew setting of its own).
		Now: func() time.Time { return o.cfg.Now().Add(-o.cfg.MaxClockSkew) }}
}

func (o *OIDC) oauth2Config(p *oidc.Provider) oauth2.Config {
	return oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: o.cfg.RedirectURL, Scopes: append([]string{oidc.ScopeOpenID}, o.cfg.Scopes...)}
}

// LoginRequest is one started login; the gateway keeps it server-side.
type LoginRequest struct {
	State, Nonce, Verifier string
	URL                    string // where to send the browser
	Created                time.Time
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Begin starts an authorization code flow with PKCE (S256), state and nonce.
func (o *OIDC) Begin(ctx context.Context) (LoginRequest, error) {
	p, _, err := o.discover(ctx)
	if err != nil {
		return LoginRequest{}, err
	}
	r := LoginRequest{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), Created: o.cfg.Now()}
	c := o.oauth2Config(p)
	r.URL = c.AuthCodeURL(r.State, oauth2.S256ChallengeOption(r.Verifier), oidc.Nonce(r.Nonce))
	return r, nil
}

// Finish completes the login: it checks state, exchanges the code (with the
// PKCE verifier), verifies the ID token (issuer, audience, azp, expiry,
// algorithm, nonce) and returns the identity keyed by (issuer, subject).
func (o *OIDC) Finish(ctx context.Context, req LoginRequest, gotState, code string) (Identity, error) {
	if subtle.ConstantTimeCompare([]byte(req.State), []byte(gotState)) != 1 || req.State == "" {
		return Identity{}, ErrStateMismatch
	}
	p, _, err := o.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	c := o.oauth2Config(p)
	tok, err := c.Exchange(o.ctx(ctx), code, oauth2.VerifierOption(req.Verifier))
	if err != nil {
		return Identity{}, fmt.Errorf("auth: code exchange failed: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return Identity{}, fmt.Errorf("%w: no id_token in the token response", ErrBadIDToken)
	}
	claims, err := o.VerifyIDToken(ctx, raw, req.Nonce)
	if err != nil {
		return Identity{}, err
	}
	if claims[o.usernameClaim()] == nil {
		// Many providers put profile claims only in userinfo.
		if ui, err := p.UserInfo(o.ctx(ctx), oauth2.StaticTokenSource(tok)); err == nil {
			var extra map[string]any
			if ui.Claims(&extra) == nil && extra["sub"] == claims["sub"] {
				for k, v := range extra {
					if _, have := claims[k]; !have {
						claims[k] = v
					}
				}
			}
		}
	}
	return o.identity(claims)
}

func (o *OIDC) usernameClaim() string {
	if o.cfg.UsernameClaim == "" {
		return "preferred_username"
	}
	return o.cfg.UsernameClaim
}

// VerifyIDToken checks an ID token and the nonce of this login and returns
// its claims.
func (o *OIDC) VerifyIDToken(ctx context.Context, raw, nonce string) (map[string]any, error) {
	_, v, err := o.discover(ctx)
	if err != nil {
		return nil, err
	}
	return verifyIDToken(ctx, v, o.cfg.ClientID, raw, nonce)
}

func verifyIDToken(ctx context.Context, v *oidc.IDTokenVerifier, clientID, raw, nonce string) (map[string]any, error) {
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadIDToken, err)
	}
	// go-oidc does not check the nonce: we must.
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, ErrNonceMismatch
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadIDToken, err)
	}
	// With several audiences the authorized party must be us.
	if len(idt.Audience) > 1 {
		if azp, _ := claims["azp"].(string); azp != clientID {
			return nil, fmt.Errorf("%w: several audiences and azp %q is not this client", ErrBadIDToken, azp)
		}
	}
	return claims, nil
}

// identity maps claims to an Identity: keyed by issuer and subject, named
// by the username claim (falling back to the subject), groups from the
// groups claim.
func (o *OIDC) identity(claims map[string]any) (Identity, error) {
	sub, _ := claims["sub"].(string)
	iss, _ := claims["iss"].(string)
	if sub == "" || iss == "" {
		return Identity{}, fmt.Errorf("%w: no subject", ErrBadIDToken)
	}
	name, _ := claims[o.usernameClaim()].(string)
	if name == "" {
		name = sub
	}
	if !ValidUserName(name) {
		return Identity{}, usererr.New("auth", fmt.Sprintf("the identity provider's user name %q cannot be used (%s)", name, badUserName))
	}
	id := Identity{User: name, Issuer: iss, Subject: sub}
	if gc := o.cfg.GroupsClaim; gc != "" {
		switch g := claims[gc].(type) {
		case []any:
			for _, x := range g {
				if s, ok := x.(string); ok && s != "" && !strings.Contains(s, ",") {
					id.Groups = append(id.Groups, s)
				}
			}
		case string:
			if g != "" && !strings.Contains(g, ",") {
				id.Groups = []string{g}
			}
		}
	}
	return id, nil
}
