package policy

import (
	"fmt"
	"path"
	"strings"
)

// deny.commands and warn.commands are a guard rail for exec requests, not a
// sandbox: they catch the command a person types, including the usual ways of
// hiding it in a line (a second command after ;, &&, ||, |, &, a newline, or
// inside $(...) and backticks, quotes around letters, sudo/env/sh -c
// wrappers, a path before the program), and refuse lines whose program name
// is computed by the shell. They cannot follow a script, an alias or a
// program that runs another. An allow rule never short-circuits them.

// CommandPart is one simple command found in a line.
type CommandPart struct {
	Words []string // after quotes are removed and wrappers skipped
	// Computed reports that the program name is made by the shell ($(...),
	// backticks, a variable), so no rule can say what runs.
	Computed bool
	Text     string // the part as it appeared, trimmed
}

// SplitCommandLine returns the whole line and every simple command in it,
// split at ; && || | & newlines ( ) $( and backticks — also inside quotes,
// so `sh -c 'a; b'` yields b.
func SplitCommandLine(line string) []CommandPart {
	if len(line) > MaxCommandLen {
		line = line[:MaxCommandLen]
	}
	parts := []CommandPart{newPart(line, false)}
	sp := splitter{}
	for i := 0; i < len(line); i++ {
		sp.step(line, &i)
	}
	sp.cut()
	return append(parts, sp.parts...)
}

// splitter is the state of one SplitCommandLine.
type splitter struct {
	parts []CommandPart
	cur   strings.Builder
	// subs holds, per open $( or backtick, whether it stood where a
	// program name goes; the text after it closes is then computed.
	subs         []bool
	inBacktick   bool
	nextComputed bool
}

// cut ends the current part.
func (s *splitter) cut() {
	text := s.cur.String()
	s.cur.Reset()
	if strings.TrimSpace(text) == "" && !s.nextComputed {
		return
	}
	s.parts = append(s.parts, newPart(text, s.nextComputed))
	s.nextComputed = false
}

// atCommandStart reports whether a word starting here is the program name:
// nothing but blanks, or whole assignment words, precede it in this part
// (x=$(date) is an assignment, not a computed program).
func (s *splitter) atCommandStart() bool {
	cur := s.cur.String()
	if strings.TrimSpace(cur) == "" {
		return true
	}
	return isAssignmentsOnly(cur) && strings.TrimRight(cur, " \t") != cur
}

// step consumes the separator or character at line[*i].
func (s *splitter) step(line string, i *int) {
	c := line[*i]
	two := ""
	if *i+1 < len(line) {
		two = line[*i : *i+2]
	}
	switch {
	case two == "$(":
		s.open()
		*i++
	case c == '`' && !s.inBacktick:
		s.inBacktick = true
		s.open()
	case c == '`' || (c == ')' && len(s.subs) > 0 && !s.inBacktick):
		s.inBacktick = s.inBacktick && c != '`'
		s.closeSub()
	case two == "&&" || two == "||":
		s.cut()
		*i++
	case strings.IndexByte(";|&\n\r()", c) >= 0:
		s.cut()
	default:
		s.cur.WriteByte(c)
	}
}

// open starts a substitution: the text so far is one part (computed if the
// substitution stands where its program name would), the inside another.
func (s *splitter) open() {
	computed := s.atCommandStart()
	s.cut()
	s.subs = append(s.subs, computed)
}

// closeSub ends a substitution; what follows continues the outer command.
func (s *splitter) closeSub() {
	s.cut()
	if n := len(s.subs); n > 0 {
		s.nextComputed = s.subs[n-1]
		s.subs = s.subs[:n-1]
	}
}

func isAssignmentsOnly(s string) bool {
	f := strings.Fields(s)
	for _, w := range f {
		if !isAssignment(w) {
			return false
		}
	}
	return len(f) > 0
}

func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// wrappers run the rest of their arguments as a command.
var wrappers = map[string]bool{"sudo": true, "doas": true, "env": true, "command": true, "exec": true, "nohup": true,
	"nice": true, "time": true, "builtin": true, "eval": true, "xargs": true, "busybox": true, "timeout": true, "stdbuf": true,
	"then": true, "else": true, "elif": true, "do": true, "if": true, "while": true, "until": true, "!": true, "{": true}

var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "ash": true}

// partCleaner and quoteRemover are built once: a strings.Replacer builds
// its byte table (~6 KiB) on first use, and the splitter runs for every
// exec request and every typed line a command rule reads.
var (
	partCleaner  = strings.NewReplacer("'", "", `"`, "", `\`, "", "{", " ", "}", " ")
	quoteRemover = strings.NewReplacer("'", "", `"`, "")
)

// newPart normalises one simple command: quotes and backslashes are removed
// (r"m or r\m is rm), assignments, wrappers and their options, and `sh -c` are
// skipped, and the program is named by its base name (/bin/rm is rm).
func newPart(text string, computed bool) CommandPart {
	clean := partCleaner.Replace(text)
	w := skipWrappers(strings.Fields(clean))
	if len(w) > 0 {
		computed = computed || strings.ContainsAny(w[0][:1], "$`")
		w[0] = path.Base(w[0])
	}
	return CommandPart{Words: w, Computed: computed, Text: strings.TrimSpace(text)}
}

// skipWrappers drops leading assignments, wrapper programs with their
// options (approximately: every -x, a number, and the value of sudo -u/-g),
// and "sh -c".
func skipWrappers(w []string) []string {
	for len(w) > 0 {
		switch {
		case isAssignment(w[0]):
			w = w[1:]
		case wrappers[path.Base(w[0])]:
			w = w[1:]
			for len(w) > 0 && (strings.HasPrefix(w[0], "-") || isNumber(w[0])) {
				if (w[0] == "-u" || w[0] == "-g") && len(w) > 1 {
					w = w[1:]
				}
				w = w[1:]
			}
		case shells[path.Base(w[0])] && len(w) > 1 && w[1] == "-c":
			w = w[2:]
		default:
			return w
		}
	}
	return w
}

func isNumber(s string) bool {
	return s != "" && strings.Trim(s, "0123456789.smhd") == ""
}

// guardPattern is one deny.commands or warn.commands entry: its words must
// begin a command (program by base name, then arguments with * ? [...] as
// globs where * also matches /); further arguments are allowed.
type guardPattern struct {
	text  string
	words []string
}

func parseGuardPattern(s string) (guardPattern, error) {
	w := strings.Fields(quoteRemover.Replace(s))
	if len(w) == 0 {
		return guardPattern{}, fmt.Errorf("policy: command pattern %q is empty", s)
	}
	for _, x := range w {
		if _, err := path.Match(x, ""); err != nil {
			return guardPattern{}, fmt.Errorf("policy: command pattern %q: bad pattern %q", s, x)
		}
	}
	if len(w) > 1 && w[len(w)-1] == "*" {
		w = w[:len(w)-1] // a trailing * adds nothing to a prefix match
	}
	w[0] = path.Base(w[0]) // programs are compared by base name
	return guardPattern{text: s, words: w}, nil
}

// matches reports whether p begins the command part.
func (p guardPattern) matches(part CommandPart) bool {
	if len(part.Words) < len(p.words) {
		return false
	}
	for i, pw := range p.words {
		if !globAny(pw, part.Words[i]) {
			return false
		}
	}
	return true
}

// globAny is path.Match where * and ? also match /.
func globAny(pat, s string) bool {
	const sep = "\x00"
	ok, _ := path.Match(strings.ReplaceAll(pat, "/", sep), strings.ReplaceAll(s, "/", sep))
	return ok
}

// guardHit is a deny or warn rule that matched a line.
type guardHit struct {
	Role, Pattern, Part string
	Computed            bool
}

// reason is the one line a user sees for a deny (or an alert says for a warn).
func (h guardHit) reason(verb string) string {
	if h.Computed {
		return fmt.Sprintf("role %s %s commands it cannot see: %q computes its program name ($(...), backticks or a variable)", h.Role, verb, h.Part)
	}
	return fmt.Sprintf("role %s %s the command %q (rule %q)", h.Role, verb, h.Part, h.Pattern)
}

// guard checks the parts of a line against one role's patterns — each simple
// command first, so the reason names it, then the whole line; a computed
// program name counts as a hit when the role has patterns at all.
func guard(role string, pats []guardPattern, parts []CommandPart) *guardHit {
	if len(pats) == 0 || len(parts) == 0 {
		return nil
	}
	for _, part := range append(parts[1:len(parts):len(parts)], parts[0]) {
		if part.Computed {
			return &guardHit{Role: role, Part: parts[0].Text, Computed: true}
		}
		for _, p := range pats {
			if p.matches(part) {
				return &guardHit{Role: role, Pattern: p.text, Part: part.Text}
			}
		}
	}
	return nil
}
