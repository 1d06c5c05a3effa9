// Package policy decides who may reach which target as which login, and with
// which options. It is deny by default: a request is allowed only when a role
// bound to the user allows the target and the login, and no bound role's deny
// rule matches. Every decision carries a human-readable reason that is written
// to the audit log and shown (in short) to the user.
package policy

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Engine evaluates roles and bindings. It is safe for concurrent use;
// Replace swaps in the rules of a reloaded configuration at once (each
// decision uses one set of rules throughout).
type Engine struct {
	cur atomic.Pointer[ruleSet]
	// observe, if set, is told of every decision Check makes (see
	// OnDecision).
	observe atomic.Pointer[func(Request, Decision)]
}

// OnDecision makes fn be told of every later decision Check makes, in the
// caller's goroutine once the decision is made; nil stops it. It is for
// counting and metrics: fn must be quick and must not call the Engine.
func (e *Engine) OnDecision(fn func(Request, Decision)) {
	if fn == nil {
		e.observe.Store(nil)
		return
	}
	e.observe.Store(&fn)
}

// ruleSet is one configuration's rules, immutable.
type ruleSet struct {
	roles    map[string]Role
	commands map[string][]CommandRule // parsed allow.commands per role
	denyCmds map[string][]guardPattern
	warnCmds map[string][]guardPattern
	bindings []Binding
	problems []error // rules that did not parse; they match nothing
	grants   GrantSource
}

// GrantSource tells which roles a user holds through approved just-in-time
// requests right now (see Requests).
type GrantSource interface {
	GrantedRoles(user string) []string
}

// WithGrants returns an Engine with e's rules whose decisions include the
// roles g grants (and keep including them across Replace).
func (e *Engine) WithGrants(g GrantSource) *Engine {
	c := *e.cur.Load()
	c.grants = g
	out := &Engine{}
	out.cur.Store(&c)
	return out
}

// Replace makes p's roles and bindings the rules of every later decision.
// The caller validates p first (Validate).
func (e *Engine) Replace(p Policy) {
	e.cur.Store(newRuleSet(p, e.cur.Load().grants))
}

// New builds an Engine from p's roles and bindings. A command rule that
// does not parse matches nothing (fail closed); Validate reports it.
func New(p Policy) *Engine {
	e := &Engine{}
	e.cur.Store(newRuleSet(p, nil))
	return e
}

func newRuleSet(p Policy, grants GrantSource) *ruleSet {
	e := &ruleSet{grants: grants, roles: map[string]Role{}, commands: map[string][]CommandRule{}, bindings: p.Bindings,
		denyCmds: map[string][]guardPattern{}, warnCmds: map[string][]guardPattern{}}
	for _, r := range p.Roles {
		e.roles[r.Name] = r
		e.denyCmds[r.Name] = e.guardPatterns(r.Name, "deny", r.Deny.Commands)
		e.warnCmds[r.Name] = e.guardPatterns(r.Name, "warn", r.Warn.Commands)
		for _, text := range r.Allow.Commands {
			cr, err := ParseCommandRule(text)
			if err != nil {
				e.problems = append(e.problems, fmt.Errorf("roles %s: allow.commands: %w", r.Name, err))
				continue
			}
			e.commands[r.Name] = append(e.commands[r.Name], cr)
		}
	}
	return e
}

// guardPatterns parses deny or warn command patterns. A bad deny pattern
// is kept as "*" so that it refuses every command (fail closed) until fixed.
func (e *ruleSet) guardPatterns(role, kind string, texts []string) []guardPattern {
	var out []guardPattern
	for _, text := range texts {
		p, err := parseGuardPattern(text)
		if err != nil {
			e.problems = append(e.problems, fmt.Errorf("roles %s: %s.commands: %w", role, kind, err))
			if kind != "deny" {
				continue
			}
			p = guardPattern{text: text, words: []string{"*"}}
		}
		out = append(out, p)
	}
	return out
}

// Validate reports the rules of p that policy cannot use.
func Validate(p Policy) error {
	return errors.Join(newRuleSet(p, nil).problems...)
}

// Target is what policy knows about a target.
type Target struct {
	Name            string // configured name, or "docker:<container>"
	Kind            string // ssh | docker
	Labels          map[string]string
	ContainerLabels map[string]string // Docker labels of the container, if any
}

// Request is one access question.
type Request struct {
	User    string
	Groups  []string
	Target  Target
	Login   string
	Command string // exec command; empty for a shell
}

// Decision is the answer with its reason.
type Decision struct {
	Allowed bool
	Reason  string
	Roles   []string    // roles that allowed the request
	Options RoleOptions // merged options of those roles
	// Command is set when every allowing role limits commands: the approved
	// exec command, whose ForceCommand is all the target may run. Nil means
	// no command restriction (or a refusal).
	Command *CommandMatch
	// Warnings are the warn.commands rules the exec request matched, one
	// line each; the request is still allowed.
	Warnings []string
	// Granted are the allowing roles held only through an approved
	// just-in-time request: when that grant ends, so does the access.
	Granted []string
}

// ForceCommand is the command the target must be told to run exclusively,
// or "" when the decision does not restrict commands.
func (d Decision) ForceCommand() string {
	if d.Command == nil {
		return ""
	}
	return d.Command.ForceCommand
}

// Roles returns the names of the roles bound to user or any of groups, and
// those granted to user by approved requests, sorted.
func (e *ruleSet) Roles(user string, groups []string) []string {
	set := e.boundSet(user, groups)
	if e.grants != nil {
		for _, r := range e.grants.GrantedRoles(user) {
			if _, ok := e.roles[r]; ok {
				set[r] = true
			}
		}
	}
	return sortedKeys(set)
}

// BoundRoles returns the roles bound to user or any of groups by the
// configuration, without grants.
func (e *ruleSet) BoundRoles(user string, groups []string) []string {
	return sortedKeys(e.boundSet(user, groups))
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

func (e *ruleSet) boundSet(user string, groups []string) map[string]bool {
	set := map[string]bool{}
	for _, b := range e.bindings {
		if (b.User != "" && b.User == user) || (b.Group != "" && contains(groups, b.Group)) {
			for _, r := range b.Roles {
				set[r] = true
			}
		}
	}
	return set
}

// Check decides req.
func (e *ruleSet) Check(req Request) Decision {
	d := e.check(req, e.Roles(req.User, req.Groups))
	if d.Allowed {
		bound := e.boundSet(req.User, req.Groups)
		for _, r := range d.Roles {
			if !bound[r] {
				d.Granted = append(d.Granted, r)
			}
		}
	}
	return d
}

// check decides req for a user holding roles.
func (e *ruleSet) check(req Request, roles []string) Decision {
	if len(roles) == 0 {
		return Decision{Reason: fmt.Sprintf("user %s has no roles", req.User)}
	}
	for _, name := range roles {
		if r := e.roles[name]; denies(r.Deny, req) {
			return Decision{Reason: fmt.Sprintf("role %s denies %s on %s", name, req.Login, req.Target.Name)}
		}
	}
	var parts []CommandPart
	if req.Command != "" {
		parts = SplitCommandLine(req.Command)
		// Deny before any allow: no allow rule can lift a command deny.
		for _, name := range roles {
			if hit := e.guardHit(name, e.denyCmds[name], e.roles[name].Deny, req, parts); hit != nil {
				return Decision{Reason: hit.reason("denies")}
			}
		}
	}
	d := Decision{}
	pc := parseCommand(req.Command)
	var cmdRefused string
	unrestricted := false
	for _, name := range roles {
		r := e.roles[name]
		if !selects(r.Allow, req.Target) || !matchLogin(r.Allow.Logins, req.Login) {
			continue
		}
		if len(r.Allow.Commands) > 0 {
			m, why := matchRules(name, req.Target.Name, e.commands[name], pc)
			if m == nil {
				cmdRefused = why
				continue
			}
			if d.Command == nil {
				d.Command = m
			}
		} else {
			unrestricted = true
		}
		d.Roles = append(d.Roles, name)
		d.Options = merge(d.Options, r.Options, len(d.Roles) == 1)
	}
	if len(d.Roles) == 0 {
		if cmdRefused != "" {
			return Decision{Reason: cmdRefused}
		}
		return Decision{Reason: fmt.Sprintf("no role of %s (%s) allows %s on %s", req.User, strings.Join(roles, ", "), req.Login, req.Target.Name)}
	}
	if unrestricted {
		d.Command = nil
	}
	for _, name := range roles {
		if hit := e.guardHit(name, e.warnCmds[name], e.roles[name].Warn, req, parts); hit != nil {
			d.Warnings = append(d.Warnings, hit.reason("warns on"))
		}
	}
	d.Allowed = true
	d.Reason = "allowed by role " + strings.Join(d.Roles, ", ")
	return d
}

// Logins returns the logins user may use on t ("*" means any), after deny
// rules of every bound role.
func (e *ruleSet) Logins(user string, groups []string, t Target) []string {
	roles := e.Roles(user, groups)
	set := map[string]bool{}
	for _, name := range roles {
		if r := e.roles[name]; selects(r.Allow, t) {
			for _, l := range r.Allow.Logins {
				set[l] = true
			}
		}
	}
	var out []string
	for l := range set {
		denied := false
		for _, name := range roles {
			denied = denied || denies(e.roles[name].Deny, Request{Target: t, Login: l})
		}
		if !denied {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// CertTTL returns the user certificate lifetime: the smallest cert_ttl of the
// user's roles, else def; never more than max.
func (e *ruleSet) CertTTL(user string, groups []string, def, max time.Duration) time.Duration {
	ttl := def
	for _, name := range e.Roles(user, groups) {
		if t := e.roles[name].Options.CertTTL; t > 0 && t < ttl {
			ttl = t
		}
	}
	if ttl > max {
		ttl = max
	}
	return ttl
}

// MaxSessions is how many sessions user may have open at once: the
// smallest non-zero options.max_sessions of all the user's roles (bound or
// granted), so a role that limits is never lifted by another; 0 means no
// limit.
func (e *ruleSet) MaxSessions(user string, groups []string) int {
	max := 0
	for _, name := range e.Roles(user, groups) {
		if n := e.roles[name].Options.MaxSessions; n > 0 && (max == 0 || n < max) {
			max = n
		}
	}
	return max
}

// Permissions are the web UI permissions beyond seeing one's own sessions.
type Permissions struct {
	Admin   bool
	Auditor bool
}

// Permissions returns the web permissions granted by the user's roles.
func (e *ruleSet) Permissions(user string, groups []string) Permissions {
	var p Permissions
	for _, name := range e.Roles(user, groups) {
		for _, perm := range e.roles[name].Options.Permissions {
			p.Admin = p.Admin || perm == "admin"
			p.Auditor = p.Auditor || perm == "auditor"
		}
	}
	return p
}

// RequireSessionMFA reports whether any role that allows login on t — for a
// shell or for any of its listed commands — asks for a fresh TOTP code per
// session. It is asked before the command is known, so a role limited to
// commands counts too.
func (e *ruleSet) RequireSessionMFA(user string, groups []string, t Target, login string) bool {
	roles := e.Roles(user, groups)
	for _, name := range roles {
		if denies(e.roles[name].Deny, Request{Target: t, Login: login}) {
			return false
		}
	}
	for _, name := range roles {
		r := e.roles[name]
		if selects(r.Allow, t) && matchLogin(r.Allow.Logins, login) && r.Options.RequireSessionMFA {
			return true
		}
	}
	return false
}

// merge combines role options: permissions are granted if any role grants
// them, limits take the smallest non-zero value... except that a role with no
// limit (zero) lifts it, since zero means "no limit" for those fields.
func merge(acc, o RoleOptions, first bool) RoleOptions {
	if first {
		return o
	}
	acc.PortForwarding = acc.PortForwarding || o.PortForwarding
	acc.SFTP = acc.SFTP || o.SFTP
	acc.AgentForwarding = acc.AgentForwarding || o.AgentForwarding
	acc.ViewInput = acc.ViewInput || o.ViewInput
	acc.RequireSessionMFA = acc.RequireSessionMFA || o.RequireSessionMFA
	acc.MaxSessionTTL = minLimit(acc.MaxSessionTTL, o.MaxSessionTTL)
	acc.IdleTimeout = minLimit(acc.IdleTimeout, o.IdleTimeout)
	return acc
}

// minLimit returns the smaller limit, where zero means unlimited.
func minLimit(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	case a < b:
		return a
	}
	return b
}

// selects reports whether rules' target selector (or container labels)
// matches t. An empty selector matches nothing.
func selects(r Rules, t Target) bool {
	for _, pat := range r.Targets.Names {
		if ok, _ := path.Match(pat, t.Name); ok {
			return true
		}
	}
	if len(r.Targets.Labels) > 0 && labelsMatch(r.Targets.Labels, t.Labels) {
		return true
	}
	return len(r.ContainerLabels) > 0 && t.ContainerLabels != nil && labelsMatch(r.ContainerLabels, t.ContainerLabels)
}

// guardHit checks an exec request's parts against a role's deny or warn
// command patterns, where the rule's targets and logins (if any) apply.
func (e *ruleSet) guardHit(role string, pats []guardPattern, r Rules, req Request, parts []CommandPart) *guardHit {
	if len(pats) == 0 || len(parts) == 0 {
		return nil
	}
	if hasSelector(r) && !selects(r, req.Target) {
		return nil
	}
	if len(r.Logins) > 0 && !matchLogin(r.Logins, req.Login) {
		return nil
	}
	return guard(role, pats, parts)
}

func hasSelector(r Rules) bool {
	return len(r.Targets.Names) > 0 || len(r.Targets.Labels) > 0 || len(r.ContainerLabels) > 0
}

// denies reports whether a deny rule matches the request. A deny rule with a
// target selector and no logins denies every login on those targets; one with
// logins and no selector denies those logins everywhere. A deny rule with
// commands denies only those commands (see guardHit).
func denies(r Rules, req Request) bool {
	if len(r.Commands) > 0 {
		return false
	}
	hasSel := hasSelector(r)
	switch {
	case !hasSel && len(r.Logins) == 0:
		return false
	case !hasSel:
		return denyLogin(r.Logins, req.Login)
	case len(r.Logins) == 0:
		return selects(r, req.Target)
	}
	return selects(r, req.Target) && denyLogin(r.Logins, req.Login)
}

// denyLogin matches deny logins ignoring case, so that where
// ssh.login_pattern admits upper case, "ROOT" is still denied with "root"
// (some targets' account lookups ignore case).
func denyLogin(denied []string, login string) bool {
	for _, l := range denied {
		if l == "*" || strings.EqualFold(l, login) {
			return true
		}
	}
	return false
}

func labelsMatch(want, have map[string]string) bool {
	for k, v := range want {
		hv, ok := have[k]
		if !ok || (v != "*" && hv != v) {
			return false
		}
	}
	return true
}

func matchLogin(allowed []string, login string) bool {
	for _, l := range allowed {
		if l == "*" || l == login {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
