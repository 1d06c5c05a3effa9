// Package web is Gatehouse's HTTPS front door: OIDC login with the TOTP
// step, TOTP enrolment, browser approvals for plain-ssh logins, the
// certificate endpoint used by `gatehouse login`, and (as it grows) the
// admin, replay and audit pages.
//
// Pages are server-rendered with html/template and no inline script; every
// response carries a strict Content-Security-Policy, HSTS and frame-ancestors
// 'none'. Sessions are server-side (a random cookie, stored hashed),
// HttpOnly, Secure and SameSite=Lax; every state-changing request carries the
// session's CSRF token. Handlers decode and validate, call the domain
// packages (auth, policy, recorder) and render — they never reach into the
// SSH gateway.
package web
