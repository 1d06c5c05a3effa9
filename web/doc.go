// Package web is Gatehouse's HTTPS front door: OIDC login with the TOTP
// step, TOTP enrolment, browser approvals for plain-ssh logins, the
// certificate endpoint used by `gatehouse login`, and (as it grows) the
// admin, replay and audit pages.
//
// Pages are server-rendered with html/template and no inline script; every
// response carries a strict Content-Security-Policy, HSTS and frame-ancestors
// 'none'. Sessions are server-side (a random cookie, stored hashed),
// HttpOnly, Secure and SameSite=Lax; every state-changing request carries the
// session's CSRF token. Who may use a page is decided once, where the route
// is registered (requireViewer, requireAuditor, requireForm, requireAdmin in
// middleware.go); a locked user's session does not load, so every one of
// them treats a locked user as signed out. Handlers read the viewer from the
// request context, decode and validate, call the domain packages (auth,
// policy, recorder) and render — they never reach into the SSH gateway and
// run SQL only on web's own tables (web_sessions, login_tokens). What a page
// shows of an error is usererr.Message: never an error string cut apart.
package web
