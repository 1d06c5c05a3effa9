package policy

import (
	"sort"
	"strings"
)

// AccessRow is one line of the access report: Subject may reach Target as
// Login through Role.
type AccessRow struct {
	Subject  string   // "user:NAME" or "group:NAME", from the bindings
	Target   string   //
	Login    string   // "*" means any login but ExceptLogins
	Role     string   //
	Commands []string // the role's command rules; empty means any command and a shell
	Options  []string // options granted by the role: sftp, port_forwarding, agent_forwarding, require_session_mfa
	// ExceptLogins are the logins a deny rule of the subject's roles refuses
	// on this target, listed when Login is "*".
	ExceptLogins []string
	// DeniedCommands are the deny.commands patterns of the subject's roles
	// that apply here.
	DeniedCommands []string
}

// Access lists who can reach which of targets as which login via which role,
// for every user and group named in the bindings (a user's group roles come
// from their identity provider at login, so they appear under the group).
// Targets are matched by name and labels; container-label rules, which are
// resolved when a container is addressed, are not listed.
func (e *ruleSet) Access(targets []Target) []AccessRow {
	var rows []AccessRow
	for _, s := range e.subjects() {
		var roles []string
		if name, ok := strings.CutPrefix(s, "user:"); ok {
			roles = e.Roles(name, nil)
		} else {
			roles = e.Roles("", []string{strings.TrimPrefix(s, "group:")})
		}
		for _, t := range targets {
			rows = append(rows, e.accessTo(s, roles, t)...)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		return a.Subject+"\x00"+a.Target+"\x00"+a.Login+"\x00"+a.Role < b.Subject+"\x00"+b.Target+"\x00"+b.Login+"\x00"+b.Role
	})
	return rows
}

// subjects returns "user:X" and "group:Y" for every binding, deduplicated.
func (e *ruleSet) subjects() []string {
	set := map[string]bool{}
	for _, b := range e.bindings {
		if b.User != "" {
			set["user:"+b.User] = true
		}
		if b.Group != "" {
			set["group:"+b.Group] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// accessTo lists the rows of one subject (holding roles) on target t.
func (e *ruleSet) accessTo(subject string, roles []string, t Target) []AccessRow {
	var rows []AccessRow
	for _, name := range roles {
		r := e.roles[name]
		if !selects(r.Allow, t) {
			continue
		}
		for _, login := range r.Allow.Logins {
			if e.anyDenies(roles, Request{Target: t, Login: login}) {
				continue
			}
			row := AccessRow{Subject: subject, Target: t.Name, Login: login, Role: name,
				Commands: r.Allow.Commands, Options: optionNames(r)}
			if login == "*" {
				row.ExceptLogins = e.deniedLogins(roles, t)
			}
			row.DeniedCommands = e.deniedCommands(roles, Request{Target: t, Login: login})
			rows = append(rows, row)
		}
	}
	return rows
}

func (e *ruleSet) anyDenies(roles []string, req Request) bool {
	for _, name := range roles {
		if denies(e.roles[name].Deny, req) {
			return true
		}
	}
	return false
}

// deniedLogins are the logins deny rules of roles refuse on t.
func (e *ruleSet) deniedLogins(roles []string, t Target) []string {
	set := map[string]bool{}
	for _, name := range roles {
		d := e.roles[name].Deny
		if len(d.Commands) == 0 && (!hasSelector(d) || selects(d, t)) {
			for _, l := range d.Logins {
				set[l] = true
			}
		}
	}
	var out []string
	for l := range set {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

func optionNames(r Role) []string {
	o := r.Options
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{{o.SFTP, "sftp"}, {o.PortForwarding, "port_forwarding"}, {o.AgentForwarding, "agent_forwarding"}, {o.RequireSessionMFA, "require_session_mfa"}} {
		if x.on {
			out = append(out, x.name)
		}
	}
	return out
}

// deniedCommands lists the deny.commands patterns of roles that apply to req.
func (e *ruleSet) deniedCommands(roles []string, req Request) []string {
	var out []string
	for _, name := range roles {
		d := e.roles[name].Deny
		if (hasSelector(d) && !selects(d, req.Target)) || (len(d.Logins) > 0 && !matchLogin(d.Logins, req.Login)) {
			continue
		}
		out = append(out, d.Commands...)
	}
	return out
}
