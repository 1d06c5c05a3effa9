package web

import (
	"context"
	"net/http"

	"github.com/gatehouse/gatehouse/policy"
)

// Who may use a page is decided once, at route registration, by one of
// the wrappers below; the handler reads the viewer they resolved from the
// request context (viewerOf). Locks are part of that one decision: a locked
// user's browser session does not load (sessionByHash), so a locked user is
// treated as signed out by every wrapper — no certificates, no approvals,
// no admin pages (not even the one that would unlock them).

// viewer is a verified browser user with their web permissions.
type viewer struct {
	ws    *websession
	perms policy.Permissions
}

func (v viewer) seesAll() bool { return v.perms.Admin || v.perms.Auditor }

// viewerKey is the request-context key of the viewer.
type viewerKey struct{}

// viewerOf is the viewer a require* wrapper put into r's context (the zero
// viewer outside one; handlers are only registered behind a wrapper).
func viewerOf(r *http.Request) viewer {
	v, _ := r.Context().Value(viewerKey{}).(viewer)
	return v
}

// resolveViewer is requireVerified plus permissions: the viewer, or false
// after sending the browser to log in.
func (s *Server) resolveViewer(w http.ResponseWriter, r *http.Request) (viewer, bool) {
	ws := s.requireVerified(w, r)
	if ws == nil {
		return viewer{}, false
	}
	return viewer{ws: ws, perms: s.opts.Policy.Permissions(ws.id.User, ws.id.Groups)}, true
}

func withViewer(r *http.Request, v viewer) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), viewerKey{}, v))
}

// requireViewer runs h for a verified, unlocked browser session; anyone
// else is sent to log in (and TOTP) and back.
func (s *Server) requireViewer(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := s.resolveViewer(w, r); ok {
			h(w, withViewer(r, v))
		}
	})
}

// requireAuditor is requireViewer for pages only admins and auditors see;
// anyone else gets 404, as for another user's session.
func (s *Server) requireAuditor(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.resolveViewer(w, r)
		if !ok {
			return
		}
		if !v.seesAll() {
			notFound(w)
			return
		}
		h(w, withViewer(r, v))
	})
}

// requireForm runs h for a state-changing form of a verified session that
// carries the session's CSRF token.
func (s *Server) requireForm(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.resolveViewer(w, r)
		if !ok {
			return
		}
		if err := checkCSRF(r, v.ws); err != nil {
			s.fail(w, r, http.StatusForbidden, "This form expired; reload the page.", err)
			return
		}
		h(w, withViewer(r, v))
	})
}

// requireAdmin runs h for a state-changing admin form: a verified session,
// its CSRF token and the admin permission. what names the action for the
// refusal page ("Only admins can what.").
func (s *Server) requireAdmin(what string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.resolveViewer(w, r)
		if !ok {
			return
		}
		if err := checkCSRF(r, v.ws); err != nil || !v.perms.Admin {
			s.fail(w, r, http.StatusForbidden, "Only admins can "+what+".", errCSRF)
			return
		}
		h(w, withViewer(r, v))
	})
}
