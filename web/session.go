package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/policy"
)

const (
	sessionCookie = "gh_session"
	stateCookie   = "gh_login"
	sessionTTL    = 12 * time.Hour
)

// websession is a logged-in browser.
type websession struct {
	hash  []byte
	id    auth.Identity
	mfaAt time.Time // zero until TOTP is verified
	csrf  string
}

func (ws *websession) verified() bool { return ws != nil && !ws.mfaAt.IsZero() }

func token() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
}

// newSession stores a session for id (not yet MFA-verified) and sets the cookie.
func (s *Server) newSession(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	t := token()
	now := s.opts.Now()
	_, err := s.opts.DB.ExecContext(r.Context(), `INSERT INTO web_sessions(id_hash, user_name, issuer, subject, groups, csrf,
		client_addr, user_agent, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, hashToken(t), id.User, id.Issuer,
		id.Subject, strings.Join(id.Groups, ","), token(), r.RemoteAddr, r.UserAgent(), now.Unix(), now.Add(sessionTTL).Unix())
	if err != nil {
		return err
	}
	s.setCookie(w, sessionCookie, t, sessionTTL)
	return nil
}

// session loads the request's session, or nil.
func (s *Server) session(r *http.Request) *websession {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	return s.sessionByHash(r.Context(), hashToken(c.Value))
}

func (s *Server) sessionByHash(ctx context.Context, h []byte) *websession {
	ws := &websession{hash: h}
	var groups string
	var mfa, expires int64
	err := s.opts.DB.QueryRowContext(ctx, `SELECT user_name, issuer, subject, groups, mfa_at, csrf, expires
		FROM web_sessions WHERE id_hash = ?`, h).Scan(&ws.id.User, &ws.id.Issuer, &ws.id.Subject, &groups, &mfa, &ws.csrf, &expires)
	if err != nil || expires < s.opts.Now().Unix() {
		return nil
	}
	if _, locked := s.locked(ctx, ws.id.User); locked {
		// A lock is an input of every web decision: a locked user's
		// browser session counts as signed out, so it can neither issue
		// certificates, approve ssh logins nor act as an admin (not even
		// to unlock itself).
		return nil
	}
	if groups != "" {
		ws.id.Groups = strings.Split(groups, ",")
	}
	if mfa > 0 {
		ws.mfaAt = time.Unix(mfa, 0).UTC()
		ws.id.MFAAt = ws.mfaAt
	}
	return ws
}

func (s *Server) markVerified(ctx context.Context, ws *websession) error {
	now := s.opts.Now()
	_, err := s.opts.DB.ExecContext(ctx, `UPDATE web_sessions SET mfa_at = ? WHERE id_hash = ?`, now.Unix(), ws.hash)
	ws.mfaAt = now.UTC().Truncate(time.Second)
	ws.id.MFAAt = ws.mfaAt
	return err
}

var errCSRF = errors.New("web: missing or wrong CSRF token")

// checkCSRF verifies the form's token against the session's, in constant time.
func checkCSRF(r *http.Request, ws *websession) error {
	if ws == nil || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(ws.csrf)) != 1 {
		return errCSRF
	}
	return nil
}

func (s *Server) deleteSession(ctx context.Context, ws *websession) {
	s.opts.DB.ExecContext(ctx, `DELETE FROM web_sessions WHERE id_hash = ?`, ws.hash)
}

// consumeLoginToken redeems a one-time CLI login token for its session.
func (s *Server) consumeLoginToken(ctx context.Context, t string) (*websession, error) {
	var sess []byte
	now := s.opts.Now().Unix()
	err := s.opts.DB.QueryRowContext(ctx, `UPDATE login_tokens SET used_at = ? WHERE token_hash = ? AND used_at = 0 AND expires > ?
		RETURNING session_hash`, now, hashToken(t), now).Scan(&sess)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errors.New("web: login token unknown, expired or already used")
	}
	if err != nil {
		return nil, err
	}
	ws := s.sessionByHash(ctx, sess)
	if !ws.verified() {
		return nil, errors.New("web: the login session has ended")
	}
	return ws, nil
}

// locked reports whether user is locked out, with the lock. It fails closed
// (policy.Locks reads a database error as locked).
func (s *Server) locked(ctx context.Context, user string) (policy.Lock, bool) {
	if s.opts.Locks == nil {
		return policy.Lock{}, false
	}
	return s.opts.Locks.Locked(ctx, user)
}
