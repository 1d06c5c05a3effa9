package gateway

import (
	"fmt"
	"strings"
	"sync/atomic"
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
	c.recheckGrantedForwards()
}

// grantedForward is a port forward whose decision came from a just-in-time
// grant: it is re-decided with the sessions and closed when the grant ends.
type grantedForward struct {
	roles []string
	end   func()
	ended atomic.Bool
}

// trackGrantedForward registers a forward allowed by a grant (nil if the
// decision needed none).
func (c *clientConn) trackGrantedForward(d policy.Decision, end func()) *grantedForward {
	if len(d.Granted) == 0 {
		return nil
	}
	gf := &grantedForward{roles: d.Granted, end: end}
	c.mu.Lock()
	if c.forwards == nil {
		c.forwards = map[*grantedForward]struct{}{}
	}
	c.forwards[gf] = struct{}{}
	c.mu.Unlock()
	return gf
}

func (c *clientConn) untrackForward(gf *grantedForward) {
	if gf == nil {
		return
	}
	c.mu.Lock()
	delete(c.forwards, gf)
	c.mu.Unlock()
}

// recheckGrantedForwards closes the forwards whose grant no longer allows
// port forwarding (no other role does either), auditing each.
func (c *clientConn) recheckGrantedForwards() {
	c.mu.Lock()
	fws := make([]*grantedForward, 0, len(c.forwards))
	for gf := range c.forwards {
		fws = append(fws, gf)
	}
	c.mu.Unlock()
	if len(fws) == 0 {
		return
	}
	if d := c.decide(""); d.Allowed && d.Options.PortForwarding {
		return
	}
	for _, gf := range fws {
		if gf.ended.Swap(true) {
			continue
		}
		c.audit(audit.Event{Type: audit.EventRequestExpired,
			Reason:  fmt.Sprintf("your access grant for role %s expired; port forward closed", strings.Join(gf.roles, ", ")),
			Details: map[string]any{"roles": strings.Join(gf.roles, ","), "kind": "forward"}})
		gf.end()
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
