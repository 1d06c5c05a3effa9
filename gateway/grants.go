package gateway

import (
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// grantPoll is how often live sessions that depend on a just-in-time grant
// are checked again; a grant ends their access within this long of expiry.
const grantPoll = time.Second

// watchGrants ends live sessions whose access came from a just-in-time
// grant (policy.Decision.Granted) once the policy no longer allows them:
// the grant expired and no other role allows the same access.
func (s *Server) watchGrants(quit <-chan struct{}) {
	t := time.NewTicker(grantPoll)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			for _, c := range s.liveConns() {
				c.recheckGrants()
			}
		}
	}
}

// recheckGrants re-decides each granted session of c and ends those that
// are no longer allowed, telling the user in one line and auditing it.
func (c *clientConn) recheckGrants() {
	c.mu.Lock()
	var granted []*session
	for s := range c.sessions {
		if s.started.Load() && len(s.decision.Granted) > 0 && s.ctx.Err() == nil {
			granted = append(granted, s)
		}
	}
	c.mu.Unlock()
	for _, s := range granted {
		if c.decide(s.command).Allowed {
			continue
		}
		reason := fmt.Sprintf("your access grant for role %s expired", strings.Join(s.decision.Granted, ", "))
		c.audit(audit.Event{Type: audit.EventRequestExpired, SessionID: s.id, Reason: reason + "; session ended",
			Details: map[string]any{"roles": strings.Join(s.decision.Granted, ",")}})
		s.cancel(revoked(reason))
	}
}

// requestHint is the refusal line's advice when a requestable role would
// allow what was refused, or "".
func (c *clientConn) requestHint(command string) string {
	role := c.s.cfg.Policy.RequestHint(policy.Request{User: c.pr.User, Groups: c.pr.Groups,
		Target: c.resolved.pol, Login: c.addr.Login, Command: command})
	if role == "" {
		return ""
	}
	return "; request it with: " + policy.RequestCommand(role)
}
