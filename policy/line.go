package policy

// Interactive lines: deny.commands and warn.commands applied to a line typed
// at a shell prompt, when Enter completes it (see gateway's line guard).

// LineVerdict is the answer for one interactive line.
type LineVerdict struct {
	// Deny is why the line is refused (one line for the user); "" lets it run.
	Deny string
	// Warnings are the warn.commands rules the line matched, one line each.
	Warnings []string
}

// LineRules reports whether deny.commands (deny) or warn.commands (warn) of
// the user's roles apply on req's target and login; only then are the lines
// of an interactive session checked.
func (e *ruleSet) LineRules(req Request) (deny, warn bool) {
	// A pattern matching every command, tried where each role's own
	// patterns apply (their targets and logins).
	all := []guardPattern{{text: "*", words: []string{"*"}}}
	probe := []CommandPart{{Words: []string{"x"}}}
	for _, name := range e.Roles(req.User, req.Groups) {
		if len(e.denyCmds[name]) > 0 && e.guardHit(name, all, e.roles[name].Deny, req, probe) != nil {
			deny = true
		}
		if len(e.warnCmds[name]) > 0 && e.guardHit(name, all, e.roles[name].Warn, req, probe) != nil {
			warn = true
		}
	}
	return deny, warn
}

// CheckLine applies deny.commands and warn.commands to one interactive line,
// exactly as to an exec request: the whole line and every simple command in
// it, deny before anything else (an allow never lifts a deny).
func (e *ruleSet) CheckLine(req Request, line string) LineVerdict {
	req.Command = line
	parts := SplitCommandLine(line)
	roles := e.Roles(req.User, req.Groups)
	for _, name := range roles {
		if hit := e.guardHit(name, e.denyCmds[name], e.roles[name].Deny, req, parts); hit != nil {
			return LineVerdict{Deny: hit.reason("denies")}
		}
	}
	var v LineVerdict
	for _, name := range roles {
		if hit := e.guardHit(name, e.warnCmds[name], e.roles[name].Warn, req, parts); hit != nil {
			v.Warnings = append(v.Warnings, hit.reason("warns on"))
		}
	}
	return v
}

// LineRules: see ruleSet.LineRules.
func (e *Engine) LineRules(req Request) (deny, warn bool) { return e.cur.Load().LineRules(req) }

// CheckLine: see ruleSet.CheckLine.
func (e *Engine) CheckLine(req Request, line string) LineVerdict {
	return e.cur.Load().CheckLine(req, line)
}
