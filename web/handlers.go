package web

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

func (s *Server) base(ws *websession, title string) map[string]any {
	d := map[string]any{"Title": title}
	if ws != nil {
		d["User"], d["CSRF"] = ws.id.User, ws.csrf
		if ws.verified() {
			d["Verified"] = true
			p := s.opts.Policy.Permissions(ws.id.User, ws.id.Groups)
			d["Admin"], d["Auditor"] = p.Admin, p.Auditor
		}
	}
	return d
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	ws := s.session(r)
	if !ws.verified() {
		s.render(w, "home.html", s.base(nil, "Welcome"))
		return
	}
	d := s.base(ws, "Home")
	host, port, _ := net.SplitHostPort(s.opts.SSHAddr)
	if u, err := url.Parse(s.config().Web.PublicURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	cfg := s.config()
	d["Issuer"], d["Subject"], d["Groups"] = ws.id.Issuer, ws.id.Subject, ws.id.Groups
	d["Roles"] = s.opts.Policy.Roles(ws.id.User, ws.id.Groups)
	d["MFAAt"] = ws.mfaAt.Format(time.RFC3339)
	d["CertTTL"] = s.opts.Policy.CertTTL(ws.id.User, ws.id.Groups, cfg.Certs.UserTTL, cfg.Certs.MaxUserTTL)
	d["PublicURL"], d["SSHHost"], d["SSHPort"] = s.publicURL(), host, port
	d["Certs"] = s.userCerts(r, ws.id.User)
	d["Example"] = s.exampleAddress(ws)
	d["HostCA"] = s.config().KnownHostsCALine(s.opts.Authority.HostCAPublicKey(), s.opts.SSHAddr)
	s.render(w, "home.html", d)
}

// exampleAddress is login@target for the first target the user may reach
// (for ready-to-paste commands), or "LOGIN@TARGET" when there is none.
func (s *Server) exampleAddress(ws *websession) string {
	for _, t := range s.config().Targets {
		if t.Kind == "docker" && t.Container == "" {
			continue
		}
		pt := policy.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels}
		if logins := s.opts.Policy.Logins(ws.id.User, ws.id.Groups, pt); len(logins) > 0 && logins[0] != "*" {
			return logins[0] + "@" + t.Name
		}
	}
	return "LOGIN@TARGET"
}

// login starts the OIDC flow; the state also goes into a cookie, so the
// callback must come back to the browser that started it.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.opts.OIDC == nil {
		s.fail(w, r, http.StatusNotFound, "This gateway has no identity provider configured.", errors.New("oidc disabled"))
		return
	}
	req, err := s.opts.OIDC.Begin(r.Context())
	if err != nil {
		s.failErr(w, r, http.StatusBadGateway, err)
		return
	}
	s.mu.Lock()
	now := s.opts.Now()
	for k, p := range s.logins {
		if now.Sub(p.req.Created) > 10*time.Minute {
			delete(s.logins, k)
		}
	}
	s.logins[req.State] = pendingLogin{req: req, next: localPath(r.URL.Query().Get("next"))}
	s.mu.Unlock()
	s.setCookie(w, stateCookie, req.State, 10*time.Minute)
	http.Redirect(w, r, req.URL, http.StatusFound)
}

func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		s.fail(w, r, http.StatusUnauthorized, "The identity provider refused the login: "+e, errors.New(e+": "+q.Get("error_description")))
		return
	}
	c, _ := r.Cookie(stateCookie)
	state := q.Get("state")
	s.mu.Lock()
	p, ok := s.logins[state]
	delete(s.logins, state)
	s.mu.Unlock()
	if !ok || c == nil || c.Value != state {
		s.audit(r, audit.Event{Type: audit.EventLogin, Reason: "state mismatch"})
		s.fail(w, r, http.StatusBadRequest, "This login link is not valid any more; start again.", auth.ErrStateMismatch)
		return
	}
	id, err := s.opts.OIDC.Finish(r.Context(), p.req, state, q.Get("code"))
	if err == nil {
		err = s.opts.TOTP.BindUser(r.Context(), id)
	}
	if err != nil {
		s.audit(r, audit.Event{Type: audit.EventLogin, Reason: "failed: " + err.Error()})
		s.failErr(w, r, http.StatusUnauthorized, err)
		return
	}
	if lk, locked := s.locked(r.Context(), id.User); locked {
		s.audit(r, audit.Event{Type: audit.EventLogin, User: id.User, UserIssuer: id.Issuer, UserSubject: id.Subject,
			Reason: "refused: user is locked (" + lk.Reason + ")"})
		s.fail(w, r, http.StatusForbidden, "Your access is locked ("+lk.Reason+"). Contact an administrator.",
			fmt.Errorf("web: login of locked user %s", id.User))
		return
	}
	if err := s.newSession(w, r, id); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not start a session.", err)
		return
	}
	s.audit(r, audit.Event{Type: audit.EventLogin, User: id.User, UserIssuer: id.Issuer, UserSubject: id.Subject,
		Reason: "oidc login, TOTP pending", Details: map[string]any{"groups": strings.Join(id.Groups, ",")}})
	http.Redirect(w, r, "/mfa?next="+url.QueryEscape(p.next), http.StatusFound)
}

func (s *Server) mfaPage(w http.ResponseWriter, r *http.Request) {
	ws := s.session(r)
	if ws == nil {
		http.Redirect(w, r, "/login", http.StatusFound)
		return
	}
	s.renderMFA(w, r, ws, "")
}

func (s *Server) renderMFA(w http.ResponseWriter, r *http.Request, ws *websession, msg string) {
	d := s.base(ws, "Second factor")
	d["Next"], d["Error"] = localPath(r.FormValue("next")), msg
	enrolled, err := s.opts.TOTP.Enrolled(r.Context(), ws.id.User)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read your second factor.", err)
		return
	}
	if !enrolled {
		e, err := s.opts.TOTP.BeginEnrol(r.Context(), ws.id.User)
		if err != nil {
			s.fail(w, r, http.StatusInternalServerError, "Could not start enrolment.", err)
			return
		}
		d["Enrol"], d["Secret"] = true, e.Secret
		d["QR"] = dataURL("data:image/png;base64," + base64.StdEncoding.EncodeToString(e.QRPNG))
	}
	s.render(w, "mfa.html", d)
}

func (s *Server) mfaSubmit(w http.ResponseWriter, r *http.Request) {
	ws := s.session(r)
	if err := checkCSRF(r, ws); err != nil {
		s.fail(w, r, http.StatusForbidden, "This form expired; reload the page.", err)
		return
	}
	code, next := r.PostFormValue("code"), localPath(r.PostFormValue("next"))
	ev := audit.Event{User: ws.id.User, UserIssuer: ws.id.Issuer, UserSubject: ws.id.Subject}
	if r.PostFormValue("enrol") == "1" {
		codes, err := s.opts.TOTP.ConfirmEnrol(r.Context(), ws.id.User, code)
		if err != nil {
			ev.Type, ev.Reason = audit.EventMFAFailure, "enrolment: "+err.Error()
			s.audit(r, ev)
			s.renderMFA(w, r, ws, s.visible(r, err))
			return
		}
		s.markVerified(r.Context(), ws)
		ev.Type, ev.Reason = audit.EventMFAEnrol, "TOTP enrolled"
		s.audit(r, ev)
		d := s.base(ws, "Recovery codes")
		d["Codes"], d["Next"] = codes, next
		s.render(w, "recovery.html", d)
		return
	}
	if err := s.opts.TOTP.Verify(r.Context(), ws.id.User, code); err != nil {
		ev.Type, ev.Reason = audit.EventMFAFailure, err.Error()
		if errors.Is(err, auth.ErrTOTPLocked) {
			ev.Type = audit.EventMFALockout
		}
		s.audit(r, ev)
		w.WriteHeader(http.StatusUnauthorized)
		s.renderMFA(w, r, ws, s.visible(r, err))
		return
	}
	s.markVerified(r.Context(), ws)
	ev.Type, ev.Reason = audit.EventMFASuccess, "web login"
	s.audit(r, ev)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	ws := s.session(r)
	if err := checkCSRF(r, ws); err != nil {
		s.fail(w, r, http.StatusForbidden, "This form expired; reload the page.", err)
		return
	}
	s.deleteSession(r.Context(), ws)
	s.setCookie(w, sessionCookie, "", -time.Second)
	s.audit(r, audit.Event{Type: audit.EventLogout, User: ws.id.User, UserIssuer: ws.id.Issuer, UserSubject: ws.id.Subject})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// requireVerified sends a browser without a TOTP-verified session to log in
// and come back.
func (s *Server) requireVerified(w http.ResponseWriter, r *http.Request) *websession {
	ws := s.session(r)
	if ws.verified() {
		return ws
	}
	next := url.QueryEscape(r.URL.RequestURI())
	if ws != nil {
		http.Redirect(w, r, "/mfa?next="+next, http.StatusFound)
	} else {
		http.Redirect(w, r, "/login?next="+next, http.StatusFound)
	}
	return nil
}

// cliLogin completes `gatehouse login`: after OIDC + TOTP in this browser it
// redirects to the CLI's loopback listener with a one-time token, which the
// CLI exchanges (with its public key) for a certificate. Only loopback
// redirects and configured prefixes are allowed.
func (s *Server) cliLogin(w http.ResponseWriter, r *http.Request) {
	redirect, state := r.URL.Query().Get("redirect_uri"), r.URL.Query().Get("state")
	if !s.allowedRedirect(redirect) || state == "" || len(state) > 200 {
		s.audit(r, audit.Event{Type: audit.EventLogin, Reason: "refused redirect", Details: map[string]any{"redirect_uri": redirect}})
		s.fail(w, r, http.StatusBadRequest, "This login link points somewhere Gatehouse does not send logins to.",
			fmt.Errorf("redirect %q not allowed", redirect))
		return
	}
	ws := s.requireVerified(w, r)
	if ws == nil {
		return
	}
	t := token()
	_, err := s.opts.DB.ExecContext(r.Context(), `INSERT INTO login_tokens(token_hash, session_hash, expires) VALUES (?, ?, ?)`,
		hashToken(t), ws.hash, s.opts.Now().Add(2*time.Minute).Unix())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not finish the login.", err)
		return
	}
	u, _ := url.Parse(redirect)
	q := u.Query()
	q.Set("state", state)
	q.Set("token", t)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// allowedRedirect accepts http://127.0.0.1:PORT/..., http://localhost:PORT/...
// and the configured prefixes.
func (s *Server) allowedRedirect(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Fragment != "" {
		return false
	}
	if u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1") && u.Port() != "" {
		return true
	}
	for _, p := range s.config().OIDC.AllowedRedirects {
		if p != "" && strings.HasPrefix(raw, p) && strings.Count(raw, "://") == 1 {
			return true
		}
	}
	return false
}

// certRequest is what `gatehouse login` posts.
type certRequest struct {
	Token     string `json:"token"`
	PublicKey string `json:"public_key"`
}

// CertResponse is what `gatehouse login` receives.
type CertResponse struct {
	User        string    `json:"user"`
	Roles       []string  `json:"roles"`
	Targets     []string  `json:"targets"` // targets the user may reach, for ssh-config
	Certificate string    `json:"certificate"`
	HostCA      string    `json:"host_ca"`
	ValidBefore time.Time `json:"valid_before"`
	SSHAddr     string    `json:"ssh_addr"`
}

func (s *Server) cliCert(w http.ResponseWriter, r *http.Request) {
	var req certRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	ws, err := s.consumeLoginToken(r.Context(), req.Token)
	if err != nil {
		s.log.Warn("cli certificate refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "login token unknown, expired or already used; run gatehouse login again", http.StatusUnauthorized)
		return
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil {
		http.Error(w, "not an SSH public key", http.StatusBadRequest)
		return
	}
	cfg := s.config()
	ttl := s.opts.Policy.CertTTL(ws.id.User, ws.id.Groups, cfg.Certs.UserTTL, cfg.Certs.MaxUserTTL)
	cert, err := s.opts.Authority.IssueUserCert(r.Context(), auth.UserCertRequest{Identity: ws.id, PublicKey: pub, TTL: ttl})
	if err != nil {
		http.Error(w, "could not issue a certificate", http.StatusInternalServerError)
		s.log.Error("issue cert", "user", ws.id.User, "err", err)
		return
	}
	s.audit(r, audit.Event{Type: audit.EventCertIssued, User: ws.id.User, UserIssuer: ws.id.Issuer, UserSubject: ws.id.Subject,
		KeyFingerprint: ssh.FingerprintSHA256(pub), CertSerial: cert.Serial, Reason: "gatehouse login",
		Details: map[string]any{"principals": strings.Join(cert.ValidPrincipals, ","), "ttl_seconds": int64(ttl / time.Second),
			"mfa_verified_at": ws.mfaAt.Format(time.RFC3339)}})
	var targets []string
	for _, t := range cfg.Targets {
		if len(s.opts.Policy.Logins(ws.id.User, ws.id.Groups, policy.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels})) > 0 &&
			(t.Kind != "docker" || t.Container != "") {
			targets = append(targets, t.Name)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(CertResponse{User: ws.id.User, Roles: s.opts.Policy.Roles(ws.id.User, ws.id.Groups),
		Targets: targets, Certificate: string(ssh.MarshalAuthorizedKey(cert)),
		HostCA:      s.config().KnownHostsCALine(s.opts.Authority.HostCAPublicKey(), s.opts.SSHAddr),
		ValidBefore: time.Unix(int64(cert.ValidBefore), 0).UTC(), SSHAddr: s.opts.SSHAddr})
}

type certRow struct {
	Serial, Key, Until string
	Expired            bool
}

// userCerts lists the user's recent certificates (newest first); the list
// is left empty (and the reason logged) when they cannot be read.
func (s *Server) userCerts(r *http.Request, user string) []certRow {
	certs, err := s.opts.Authority.UserCertificates(r.Context(), user, 10)
	if err != nil {
		s.log.Warn("list certificates", "user", user, "err", err)
		return nil
	}
	out := make([]certRow, 0, len(certs))
	now := s.opts.Now()
	for _, c := range certs {
		out = append(out, certRow{Serial: fmt.Sprint(c.Serial), Key: c.KeyFingerprint,
			Until: c.ValidBefore.Format(time.RFC3339), Expired: !c.ValidBefore.After(now)})
	}
	return out
}
