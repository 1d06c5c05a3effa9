package web

import (
	"errors"
	"net/http"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// The approval page lets a logged-in user approve one plain-ssh login. It
// shows exactly what is being asked (login@target, the client's address,
// version and key fingerprint), so a link sent by someone else shows their
// request, not the user's own; approving covers that request only. A role
// that needs a fresh TOTP code per session asks for one here too.

// approvalData is what the approval page shows about a pending request.
func (s *Server) approvalData(ws *websession, p *auth.PendingApproval) map[string]any {
	d := s.base(ws, "Approve ssh login")
	d["Code"], d["Asked"], d["ClientIP"], d["ClientAddr"] = p.Code, p.Asked(), p.ClientIP(), p.ClientAddr
	d["ClientVersion"], d["Key"] = p.ClientVersion, p.KeyFingerprint
	d["NeedTOTP"] = s.approvalNeedsTOTP(ws, p)
	return d
}

// approvalNeedsTOTP reports whether a role that allows the requested login
// on the requested target requires a fresh TOTP code for every session.
func (s *Server) approvalNeedsTOTP(ws *websession, p *auth.PendingApproval) bool {
	if p.Target == "" {
		return false
	}
	t := policy.Target{Name: p.Target}
	for _, ct := range s.config().Targets {
		if ct.Name == p.Target {
			t = policy.Target{Name: ct.Name, Kind: ct.Kind, Labels: ct.Labels}
		}
	}
	return s.opts.Policy.RequireSessionMFA(ws.id.User, ws.id.Groups, t, p.Login)
}

// approvalError shows why a code cannot be approved.
func (s *Server) approvalError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusNotFound
	if errors.Is(err, auth.ErrApprovalClosed) {
		status = http.StatusGone
	}
	s.failErr(w, r, status, err)
}

func (s *Server) approvePage(w http.ResponseWriter, r *http.Request) {
	ws := viewerOf(r).ws
	if s.opts.Approvals == nil {
		s.fail(w, r, http.StatusNotFound, "Browser approvals are not enabled.", errors.New("no approvals"))
		return
	}
	p, err := s.opts.Approvals.Lookup(r.PathValue("code"))
	if err != nil {
		s.approvalError(w, r, err)
		return
	}
	s.render(w, "approve.html", s.approvalData(ws, p))
}

func (s *Server) approveSubmit(w http.ResponseWriter, r *http.Request) {
	ws := s.session(r)
	if err := checkCSRF(r, ws); err != nil || !ws.verified() || s.opts.Approvals == nil {
		s.fail(w, r, http.StatusForbidden, "This form expired; reload the page.", errCSRF)
		return
	}
	p, err := s.opts.Approvals.Lookup(r.PathValue("code"))
	if err != nil {
		s.approvalError(w, r, err)
		return
	}
	ev := audit.Event{Type: audit.EventLogin, User: ws.id.User, UserIssuer: ws.id.Issuer, UserSubject: ws.id.Subject,
		KeyFingerprint: p.KeyFingerprint, Target: p.Target, Login: p.Login,
		Details: map[string]any{"ssh_client": p.ClientAddr, "ssh_version": p.ClientVersion, "code": p.Code}}
	id := ws.id
	id.MFAAt = ws.mfaAt
	if s.approvalNeedsTOTP(ws, p) {
		if err := s.opts.TOTP.Verify(r.Context(), ws.id.User, r.PostFormValue("totp")); err != nil {
			ev.Type, ev.Reason = audit.EventMFAFailure, "ssh login approval: "+err.Error()
			if errors.Is(err, auth.ErrTOTPLocked) {
				ev.Type = audit.EventMFALockout
			}
			s.audit(r, ev)
			d := s.approvalData(ws, p)
			d["Error"] = s.visible(r, err)
			w.WriteHeader(http.StatusUnauthorized)
			s.render(w, "approve.html", d)
			return
		}
		id.MFAAt = s.opts.Now()
	}
	if err := s.opts.Approvals.Approve(p.Code, id); err != nil {
		s.approvalError(w, r, err)
		return
	}
	ev.Reason = "ssh login to " + p.Asked() + " approved in the browser"
	s.audit(r, ev)
	d := s.base(ws, "Approved")
	d["Done"], d["Asked"] = true, p.Asked()
	s.render(w, "approve.html", d)
}
