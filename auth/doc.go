// Package auth is Gatehouse's identity layer: the SSH certificate authorities
// (a user CA and a host CA, Ed25519, private keys sealed at rest), user and
// per-session certificate minting, certificate checking for the gateway, and —
// in oidc*.go, totp*.go, approval*.go and websession*.go — the OpenID Connect
// relying party, the TOTP second factor and web sessions.
//
// A user certificate names exactly one principal, the Gatehouse user, with
// KeyId "gatehouse:<user>". The user's OIDC identity, groups and the time MFA
// was verified travel as certificate extensions signed by the user CA, so the
// gateway can bind roles without calling the identity provider.
package auth
