package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Command rules (allow.commands) are matched on the parsed argument list of
// an exec request, never as a glob over the shell string: "systemctl status *"
// must not match "systemctl status x; reboot". The tokenizer below understands
// the quoting an engineer types (spaces, '...' and "...") and refuses — it
// never interprets — everything a shell would act on: command lists, pipes,
// redirections, substitutions, expansions, globs, comments. What is approved
// is then rendered back into one canonical, fully quoted command line, which
// becomes the force-command of the per-session certificate, so the target's
// sshd runs exactly that and nothing else.
//
// A rule written "shell:TEXT" opts out of all this for one exact command line:
// the request must equal TEXT byte for byte, and TEXT is handed to the
// target's shell as it is (pipes and all). It has no wildcards, so it cannot
// be extended.

// MaxCommandLen bounds an exec request the tokenizer reads.
const MaxCommandLen = 8192

// ShellRulePrefix marks a rule that allows one exact shell command line.
const ShellRulePrefix = "shell:"

// GlobRulePrefix marks a rule whose pattern words may be matched by
// unquoted globs in the request, which the target's shell then expands
// ("glob:ls /var/log/*.log" allows `ls /var/log/app*.log`).
const GlobRulePrefix = "glob:"

// ErrCommandSyntax is wrapped by every *SyntaxError.
var ErrCommandSyntax = errors.New("policy: command refused")

// SyntaxError says why a command line was refused by the tokenizer.
type SyntaxError struct {
	Offset int    // byte offset of the offending character
	Why    string // one line, for the user
}

// Error implements error.
func (e *SyntaxError) Error() string { return "policy: " + e.Reason() }

// Reason is the line shown to the user and audited.
func (e *SyntaxError) Reason() string {
	return fmt.Sprintf("command refused: %s at byte %d; only plain arguments are allowed", e.Why, e.Offset)
}

// Unwrap makes errors.Is(err, ErrCommandSyntax) hold.
func (e *SyntaxError) Unwrap() error { return ErrCommandSyntax }

// word is one parsed argument; glob reports an unquoted * ? or [ in it.
type word struct {
	text   string
	glob   bool
	globAt int // byte offset of the first unquoted glob character
}

// metaNames names the characters a shell acts on outside quotes.
var metaNames = map[rune]string{
	';': "command list", '&': "background or command list", '|': "pipe",
	'<': "redirection", '>': "redirection", '(': "subshell", ')': "subshell",
	'{': "brace expansion or group", '}': "brace expansion or group",
	'\n': "newline (second command)", '\r': "carriage return",
}

// forbidden names characters refused everywhere, even inside quotes: inside
// double quotes a shell still expands them, and refusing them everywhere
// keeps the canonical rendering safe in any quoting.
var forbidden = map[rune]string{
	'$': "substitution or expansion", '`': "command substitution",
	'\\': "escape", '!': "history or negation",
}

// Tokenize splits an exec request into its arguments, or refuses it with a
// *SyntaxError. Unquoted glob characters are refused too.
func Tokenize(cmd string) ([]string, error) {
	ws, err := tokenize(cmd)
	if err != nil {
		return nil, err
	}
	argv := make([]string, len(ws))
	for i, w := range ws {
		if w.glob {
			return nil, &SyntaxError{Offset: w.globAt, Why: fmt.Sprintf("argument %q is a glob the target's shell would expand (quote it to mean it literally)", w.text)}
		}
		argv[i] = w.text
	}
	return argv, nil
}

// tokenizer is the state of one tokenize call.
type tokenizer struct {
	words   []word
	cur     strings.Builder
	in      bool // inside a word
	glob    bool
	globAt  int
	quote   rune // 0, '\'' or '"'
	quoteAt int
}

func (t *tokenizer) flush() {
	if t.in {
		t.words = append(t.words, word{text: t.cur.String(), glob: t.glob, globAt: t.globAt})
	}
	t.cur.Reset()
	t.in, t.glob = false, false
}

// tokenize is the state machine behind Tokenize: outside quotes, a blank ends
// a word, a quote opens a quoted part of the word, a metacharacter refuses;
// inside quotes everything but the closing quote is literal, except the
// characters refused everywhere.
func tokenize(cmd string) ([]word, error) {
	if len(cmd) > MaxCommandLen {
		return nil, &SyntaxError{Offset: MaxCommandLen, Why: fmt.Sprintf("longer than %d bytes", MaxCommandLen)}
	}
	if !utf8.ValidString(cmd) {
		return nil, &SyntaxError{Offset: firstInvalid(cmd), Why: "not valid UTF-8"}
	}
	t := &tokenizer{}
	for i, r := range cmd {
		if err := t.step(i, r); err != nil {
			return nil, err
		}
	}
	if t.quote != 0 {
		return nil, &SyntaxError{Offset: t.quoteAt, Why: fmt.Sprintf("unclosed %c quote", t.quote)}
	}
	t.flush()
	if len(t.words) == 0 {
		return nil, &SyntaxError{Why: "empty command"}
	}
	for _, w := range t.words {
		if strings.ContainsRune(w.text, '\'') && strings.ContainsRune(w.text, '"') {
			return nil, &SyntaxError{Offset: strings.IndexByte(cmd, '"'), Why: "an argument with both kinds of quote"}
		}
	}
	return t.words, nil
}

// step consumes rune r at byte offset i.
func (t *tokenizer) step(i int, r rune) error {
	if why, bad := forbidden[r]; bad {
		return &SyntaxError{Offset: i, Why: fmt.Sprintf("%q is shell syntax (%s)", r, why)}
	}
	if t.quote == 0 {
		if why, bad := metaNames[r]; bad {
			return &SyntaxError{Offset: i, Why: fmt.Sprintf("%q is shell syntax (%s)", r, why)}
		}
	}
	if r != ' ' && r != '\t' && !unicode.IsPrint(r) {
		return &SyntaxError{Offset: i, Why: fmt.Sprintf("unprintable character %q", r)}
	}
	switch {
	case t.quote != 0 && r == t.quote:
		t.quote = 0
	case t.quote != 0:
		t.cur.WriteRune(r)
	case r == ' ' || r == '\t':
		t.flush()
	case r == '\'' || r == '"':
		t.in, t.quote, t.quoteAt = true, r, i
	default:
		return t.plain(i, r)
	}
	return nil
}

// plain consumes an unquoted character that is not a blank, quote or
// metacharacter.
func (t *tokenizer) plain(i int, r rune) error {
	if !t.in && (r == '#' || r == '~') {
		why := "comment"
		if r == '~' {
			why = "home directory expansion"
		}
		return &SyntaxError{Offset: i, Why: fmt.Sprintf("%q at the start of an argument is shell syntax (%s)", r, why)}
	}
	if (r == '*' || r == '?' || r == '[') && !t.glob {
		t.glob, t.globAt = true, i
	}
	t.in = true
	t.cur.WriteRune(r)
	return nil
}

func firstInvalid(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			return i
		}
	}
	return 0
}

// Render joins argv into one command line that a POSIX shell splits back into
// exactly argv: plain words bare, anything else in single quotes (or double
// quotes for a word holding a single quote; Tokenize never yields one holding
// both, nor $ ` \ or !).
func Render(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		switch {
		case a != "" && strings.Trim(a, safeChars) == "":
			parts[i] = a
		case !strings.ContainsRune(a, '\''):
			parts[i] = "'" + a + "'"
		default:
			parts[i] = `"` + a + `"`
		}
	}
	return strings.Join(parts, " ")
}

const safeChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-"

// CommandRule is one parsed entry of allow.commands.
type CommandRule struct {
	Text  string // as configured
	Shell string // for a shell: rule, the one command line it allows
	words []word // argument patterns: exact, or a glob for one argument
	rest  bool   // a final lone * : any further plain arguments
	globs bool   // request globs may match pattern words (glob: rules)
}

// ParseCommandRule parses an allow.commands entry. The first word must be
// literal; a later word with unquoted * ? [ matches one argument by glob
// (path.Match); a final lone * matches any number of further arguments.
func ParseCommandRule(s string) (CommandRule, error) {
	if sh, ok := strings.CutPrefix(s, ShellRulePrefix); ok {
		sh = strings.TrimSpace(sh)
		if sh == "" {
			return CommandRule{}, fmt.Errorf("policy: command rule %q: empty shell command", s)
		}
		return CommandRule{Text: s, Shell: sh}, nil
	}
	body, globs := strings.CutPrefix(s, GlobRulePrefix)
	ws, err := tokenize(body)
	if err != nil {
		return CommandRule{}, fmt.Errorf("policy: command rule %q: %s (use %q for one exact shell command line)", s, err.(*SyntaxError).Why, ShellRulePrefix+s)
	}
	r := CommandRule{Text: s, words: ws, globs: globs}
	if last := ws[len(ws)-1]; len(ws) > 1 && last.glob && last.text == "*" {
		r.words, r.rest = ws[:len(ws)-1], true
	}
	if r.words[0].glob {
		return CommandRule{}, fmt.Errorf("policy: command rule %q: the program name must be literal", s)
	}
	for _, w := range r.words {
		if _, err := path.Match(w.text, ""); w.glob && err != nil {
			return CommandRule{}, fmt.Errorf("policy: command rule %q: bad pattern %q", s, w.text)
		}
	}
	return r, nil
}

// Match reports whether argv is allowed by the rule (never for a shell rule,
// which matches the raw line: see MatchLine).
func (r CommandRule) Match(argv []string) bool {
	if r.Shell != "" || len(argv) < len(r.words) || (!r.rest && len(argv) != len(r.words)) {
		return false
	}
	for i, w := range r.words {
		if w.glob && w.text == "*" {
			continue // a lone * is any one argument, slashes included
		}
		if !w.glob && argv[i] != w.text {
			return false
		}
		if ok, _ := path.Match(w.text, argv[i]); w.glob && !ok {
			return false
		}
	}
	return true
}

// MatchLine reports whether a shell rule allows the raw command line.
func (r CommandRule) MatchLine(line string) bool {
	return r.Shell != "" && line == r.Shell
}

// CommandMatch is an approved exec command.
type CommandMatch struct {
	Role string   // the role whose rule matched
	Rule string   // the rule as configured
	Argv []string // parsed arguments; nil for a shell rule
	// ForceCommand is what the target runs: the canonical rendering of Argv,
	// or the shell rule's exact line.
	ForceCommand string
}

// parsedCommand is an exec request parsed once per decision.
type parsedCommand struct {
	line  string
	argv  []string
	err   error
	words []word // set when the only fault is unquoted globs (for glob: rules)
}

func parseCommand(line string) parsedCommand {
	if line == "" {
		return parsedCommand{}
	}
	argv, err := Tokenize(line)
	pc := parsedCommand{line: line, argv: argv, err: err}
	if err != nil {
		if ws, werr := tokenize(line); werr == nil {
			pc.words = ws
		}
	}
	return pc
}

// matchRules finds the first rule of role that allows the command, or says
// why none does.
func matchRules(role, target string, rules []CommandRule, pc parsedCommand) (*CommandMatch, string) {
	if pc.line == "" {
		return nil, fmt.Sprintf("role %s allows only listed commands on %s, not a shell or subsystem", role, target)
	}
	for _, r := range rules {
		if r.MatchLine(pc.line) {
			return &CommandMatch{Role: role, Rule: r.Text, ForceCommand: r.Shell}, ""
		}
	}
	if pc.err != nil {
		if m := matchGlobRules(role, rules, pc.words); m != nil {
			return m, ""
		}
		return nil, pc.err.(*SyntaxError).Reason()
	}
	for _, r := range rules {
		if r.Match(pc.argv) {
			return &CommandMatch{Role: role, Rule: r.Text, Argv: pc.argv, ForceCommand: Render(pc.argv)}, ""
		}
	}
	return nil, fmt.Sprintf("role %s allows only listed commands on %s; %q is not one of them", role, target, Render(pc.argv))
}

// RoleCommands lists the command rules of one role.
type RoleCommands struct {
	Role  string
	Rules []string // as configured; empty means the role allows any command
}

// CommandRules returns, for each of the user's roles that allows login on t,
// its command rules (for policy explain).
func (e *ruleSet) CommandRules(user string, groups []string, t Target, login string) []RoleCommands {
	var out []RoleCommands
	for _, name := range e.Roles(user, groups) {
		r := e.roles[name]
		if selects(r.Allow, t) && matchLogin(r.Allow.Logins, login) {
			out = append(out, RoleCommands{Role: name, Rules: r.Allow.Commands})
		}
	}
	return out
}

// globWordChars may appear in a word passed unquoted to the target's shell.
const globWordChars = safeChars + "*?[]"

// matchGlobRules tries the glob: rules against a request whose only fault
// is unquoted globs: each glob word must stand where the rule has a pattern
// and match it as text; the rendering leaves those words unquoted so the
// target's shell expands them (within the pattern's directory: * does not
// match /).
func matchGlobRules(role string, rules []CommandRule, ws []word) *CommandMatch {
	if ws == nil {
		return nil
	}
	for _, r := range rules {
		if r.globs && r.matchWords(ws) {
			argv := make([]string, len(ws))
			for i, w := range ws {
				argv[i] = w.text
			}
			return &CommandMatch{Role: role, Rule: r.Text, Argv: argv, ForceCommand: renderWords(ws)}
		}
	}
	return nil
}

// matchWords is Match for words that may be globs.
func (r CommandRule) matchWords(ws []word) bool {
	if len(ws) < len(r.words) || (!r.rest && len(ws) != len(r.words)) {
		return false
	}
	for i, w := range ws {
		if !w.glob {
			continue
		}
		if i >= len(r.words) || !r.words[i].glob || r.words[i].text == "*" || !plainGlob(w.text) {
			return false
		}
	}
	argv := make([]string, len(ws))
	for i, w := range ws {
		argv[i] = w.text
	}
	return r.Match(argv)
}

// plainGlob reports whether a request glob may go to the target's shell: only
// plain characters, and no path component that starts with a dot (.* can
// expand to .. in some shells).
func plainGlob(w string) bool {
	if strings.Trim(w, globWordChars) != "" {
		return false
	}
	for _, c := range strings.Split(w, "/") {
		if strings.HasPrefix(c, ".") {
			return false
		}
	}
	return true
}

// renderWords is Render leaving glob words unquoted.
func renderWords(ws []word) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		if w.glob {
			parts[i] = w.text
		} else {
			parts[i] = Render([]string{w.text})
		}
	}
	return strings.Join(parts, " ")
}
