package gateway

import (
	"context"
	"fmt"
)

// reserveSession takes one of user's session slots, or refuses with the
// line the user sees when max (non-zero) are already taken — on this
// instance and, with Config.SessionsElsewhere, on the others.
func (s *Server) reserveSession(ctx context.Context, user string, max int) (string, bool) {
	elsewhere := 0
	if max > 0 && s.cfg.SessionsElsewhere != nil {
		n, err := s.cfg.SessionsElsewhere(ctx, user)
		if err != nil { // fail closed: the limit cannot be known
			s.log.Error("max_sessions: count sessions on other instances", "user", user, "err", err)
			return "max_sessions cannot be checked right now (the database did not answer); try again", false
		}
		elsewhere = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.perUser[user] + elsewhere; max > 0 && n >= max {
		return fmt.Sprintf("too many sessions: you have %d open and your roles allow %d at once (max_sessions); end one first", n, max), false
	}
	s.perUser[user]++
	return "", true
}

// releaseSession gives back a slot taken by reserveSession.
func (s *Server) releaseSession(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUser[user]--; s.perUser[user] <= 0 {
		delete(s.perUser, user)
	}
}
