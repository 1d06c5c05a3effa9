package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// requestRoutes adds the just-in-time access pages: a user files a request
// for a requestable role; reviewers (a bound role with
// options.review_requests naming it) approve or deny it.
func (s *Server) requestRoutes() {
	s.mux.Handle("GET /requests", s.requireViewer(s.requestsPage))
	s.mux.Handle("POST /requests", s.requireForm(s.requestCreate))
	s.mux.Handle("POST /requests/{id}/approve", s.requireForm(s.requestApprove))
	s.mux.Handle("POST /requests/{id}/deny", s.requireForm(s.requestDeny))
}

// sentence is a one-line message as a sentence for the page.
func sentence(msg string) string {
	if msg == "" {
		return ""
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

// requestsPage shows the request form (pre-filled from the query, which is
// how `gatehouse request` opens it), the user's own requests with every
// step, and the pending requests the user may review.
func (s *Server) requestsPage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	s.renderRequests(w, r, v, http.StatusOK, "")
}

func (s *Server) renderRequests(w http.ResponseWriter, r *http.Request, v viewer, status int, errMsg string) {
	d := s.uiBase(v, "Access requests")
	q := r.URL.Query()
	role, dur, reason := q.Get("role"), q.Get("for"), q.Get("reason")
	if r.Method == http.MethodPost {
		role, dur, reason = r.PostFormValue("role"), r.PostFormValue("for"), r.PostFormValue("reason")
	}
	if dur == "" {
		dur = "1h"
	}
	d["Role"], d["For"], d["Reason"], d["Error"] = role, dur, reason, errMsg
	d["Requestable"] = s.opts.Policy.RequestableRoles()
	mine, err := s.opts.Requests.ForUser(r.Context(), s.opts.Policy, v.ws.id.User)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read your access requests.", err)
		return
	}
	review, err := s.opts.Requests.Reviewable(r.Context(), s.opts.Policy, v.ws.id.User, v.ws.id.Groups)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read pending access requests.", err)
		return
	}
	d["Mine"], d["Review"] = mine, review
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	s.render(w, "requests.html", d)
}

func (s *Server) requestCreate(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	d, err := time.ParseDuration(strings.TrimSpace(r.PostFormValue("for")))
	if err != nil || d <= 0 {
		s.renderRequests(w, r, v, http.StatusBadRequest, "Give a duration such as 30m or 2h.")
		return
	}
	ar, err := s.opts.Requests.Create(r.Context(), s.opts.Policy, v.ws.id.User, strings.TrimSpace(r.PostFormValue("role")), d, r.PostFormValue("reason"))
	if err != nil {
		s.log.Warn("access request refused", "user", v.ws.id.User, "err", err)
		s.renderRequests(w, r, v, http.StatusBadRequest, sentence(s.visible(r, err)))
		return
	}
	s.audit(r, audit.Event{Type: audit.EventRequestCreated, User: v.ws.id.User,
		Reason:  "requested role " + ar.Role + " for " + ar.Duration.String() + ": " + ar.Reason,
		Details: map[string]any{"request": ar.ID, "role": ar.Role, "for": ar.Duration.String(), "approvals_required": ar.Required}})
	http.Redirect(w, r, "/requests#request-"+ar.ID, http.StatusSeeOther)
}

func (s *Server) requestApprove(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	id := r.PathValue("id")
	ar, granted, err := s.opts.Requests.Approve(r.Context(), s.opts.Policy, id, v.ws.id.User, v.ws.id.Groups)
	if err != nil {
		s.refuseReview(w, r, v, id, "approve", err)
		return
	}
	reason := "approved " + ar.User + "'s request for role " + ar.Role
	if granted {
		reason += "; granted until " + ar.Expires.Format(time.RFC3339)
	} else {
		reason += "; waiting for another approval"
	}
	s.audit(r, audit.Event{Type: audit.EventRequestApproved, User: v.ws.id.User, Reason: reason,
		Details: map[string]any{"request": ar.ID, "requester": ar.User, "role": ar.Role, "granted": granted,
			"approvals": len(ar.Approvers), "approvals_required": ar.Required}})
	http.Redirect(w, r, "/requests", http.StatusSeeOther)
}

func (s *Server) requestDeny(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	id := r.PathValue("id")
	ar, err := s.opts.Requests.Deny(r.Context(), s.opts.Policy, id, v.ws.id.User, v.ws.id.Groups, r.PostFormValue("note"))
	if err != nil {
		s.refuseReview(w, r, v, id, "deny", err)
		return
	}
	s.audit(r, audit.Event{Type: audit.EventRequestDenied, User: v.ws.id.User,
		Reason:  "denied " + ar.User + "'s request for role " + ar.Role + ": " + ar.Note,
		Details: map[string]any{"request": ar.ID, "requester": ar.User, "role": ar.Role}})
	http.Redirect(w, r, "/requests", http.StatusSeeOther)
}

// refuseReview shows why a review was refused, and audits refusals that
// cross a boundary (self-approval, a user who is not a reviewer).
func (s *Server) refuseReview(w http.ResponseWriter, r *http.Request, v viewer, id, what string, err error) {
	status := http.StatusConflict
	msg := s.visible(r, err)
	if errors.Is(err, policy.ErrSelfApproval) || errors.Is(err, policy.ErrNotReviewer) || errors.Is(err, policy.ErrUnknownRequest) {
		status = http.StatusForbidden
		s.audit(r, audit.Event{Type: audit.EventRequestDenied, User: v.ws.id.User,
			Reason:  "refused to let " + v.ws.id.User + " " + what + " request " + id + ": " + msg,
			Details: map[string]any{"request": id, "refused": true}})
	}
	s.log.Warn("access request review refused", "user", v.ws.id.User, "request", id, "err", err)
	s.renderRequests(w, r, v, status, sentence(msg))
}
