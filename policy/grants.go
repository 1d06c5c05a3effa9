package policy

import "sort"

// Grant is one login a user may use on a target and the roles that allow it.
type Grant struct {
	Login string
	Roles []string
}

// Grants returns the logins user may use on t ("*" means any) after deny
// rules of every bound role, each with the roles whose allow rules grant it
// (for the access matrix of the web UI). It agrees with Logins.
func (e *ruleSet) Grants(user string, groups []string, t Target) []Grant {
	roles := e.Roles(user, groups)
	via := map[string][]string{}
	for _, name := range roles {
		if r := e.roles[name]; selects(r.Allow, t) {
			for _, l := range r.Allow.Logins {
				if !contains(via[l], name) {
					via[l] = append(via[l], name)
				}
			}
		}
	}
	var out []Grant
	for l, rs := range via {
		denied := false
		for _, name := range roles {
			denied = denied || denies(e.roles[name].Deny, Request{Target: t, Login: l})
		}
		if !denied {
			sort.Strings(rs)
			out = append(out, Grant{Login: l, Roles: rs})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Login < out[j].Login })
	return out
}
