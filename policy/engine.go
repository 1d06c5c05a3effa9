package policy

import "time"

// The Engine's methods decide with the rules in force when they are called.

// Grants: see ruleSet.Grants.
func (e *Engine) Grants(user string, groups []string, t Target) []Grant {
	return e.cur.Load().Grants(user, groups, t)
}

// Access: see ruleSet.Access.
func (e *Engine) Access(targets []Target) []AccessRow { return e.cur.Load().Access(targets) }

// CommandRules: see ruleSet.CommandRules.
func (e *Engine) CommandRules(user string, groups []string, t Target, login string) []RoleCommands {
	return e.cur.Load().CommandRules(user, groups, t, login)
}

// Roles: see ruleSet.Roles.
func (e *Engine) Roles(user string, groups []string) []string {
	return e.cur.Load().Roles(user, groups)
}

// BoundRoles: see ruleSet.BoundRoles.
func (e *Engine) BoundRoles(user string, groups []string) []string {
	return e.cur.Load().BoundRoles(user, groups)
}

// Check: see ruleSet.Check.
func (e *Engine) Check(req Request) Decision {
	d := e.cur.Load().Check(req)
	if fn := e.observe.Load(); fn != nil {
		(*fn)(req, d)
	}
	return d
}

// Logins: see ruleSet.Logins.
func (e *Engine) Logins(user string, groups []string, t Target) []string {
	return e.cur.Load().Logins(user, groups, t)
}

// CertTTL: see ruleSet.CertTTL.
func (e *Engine) CertTTL(user string, groups []string, def, max time.Duration) time.Duration {
	return e.cur.Load().CertTTL(user, groups, def, max)
}

// Permissions: see ruleSet.Permissions.
func (e *Engine) Permissions(user string, groups []string) Permissions {
	return e.cur.Load().Permissions(user, groups)
}

// RequireSessionMFA: see ruleSet.RequireSessionMFA.
func (e *Engine) RequireSessionMFA(user string, groups []string, t Target, login string) bool {
	return e.cur.Load().RequireSessionMFA(user, groups, t, login)
}

// Requestable: see ruleSet.Requestable.
func (e *Engine) Requestable(role string) (Role, bool) { return e.cur.Load().Requestable(role) }

// RequestableRoles: see ruleSet.RequestableRoles.
func (e *Engine) RequestableRoles() []string { return e.cur.Load().RequestableRoles() }

// ApprovalsRequired: see ruleSet.ApprovalsRequired.
func (e *Engine) ApprovalsRequired(role string) int { return e.cur.Load().ApprovalsRequired(role) }

// MaxRequestTTL: see ruleSet.MaxRequestTTL.
func (e *Engine) MaxRequestTTL(role string) time.Duration { return e.cur.Load().MaxRequestTTL(role) }

// CanReview: see ruleSet.CanReview.
func (e *Engine) CanReview(user string, groups []string, role string) (string, bool) {
	return e.cur.Load().CanReview(user, groups, role)
}

// RequestHint: see ruleSet.RequestHint.
func (e *Engine) RequestHint(req Request) string { return e.cur.Load().RequestHint(req) }

// MaxSessions: see ruleSet.MaxSessions.
func (e *Engine) MaxSessions(user string, groups []string) int {
	return e.cur.Load().MaxSessions(user, groups)
}
