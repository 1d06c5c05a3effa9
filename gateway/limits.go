package gateway

import "fmt"

// reserveSession takes one of user's session slots, or refuses with the
// line the user sees when max (non-zero) are already taken.
func (s *Server) reserveSession(user string, max int) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.perUser[user]; max > 0 && n >= max {
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
