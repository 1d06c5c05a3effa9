package policy

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/gatehouse/gatehouse/internal/usererr"
)

// Expectation is one line of a policy test file:
//
//	USER[GROUP,...] TARGET LOGIN [COMMAND...] -> allow|deny
//
// "->" may also be written "→". Blank lines and lines starting with # are
// skipped. Everything between the login and the arrow is the exec command,
// taken as it is (shell syntax included); none means an interactive shell.
type Expectation struct {
	Line    int // 1-based line number in the file
	Text    string
	Request Request
	Allow   bool
}

// MaxExpectations bounds a policy test file.
const MaxExpectations = 100000

// ParseExpectations reads a policy test file. Errors name the line.
func ParseExpectations(r io.Reader) ([]Expectation, error) {
	var out []Expectation
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if len(out) == MaxExpectations {
			return nil, usererr.New("policy", fmt.Sprintf("line %d: more than %d expectations", n, MaxExpectations))
		}
		e, err := parseExpectation(text)
		if err != nil {
			return nil, usererr.New("policy", fmt.Sprintf("line %d: %v", n, err))
		}
		e.Line = n
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, usererr.New("policy", fmt.Sprintf("line %d: %v", n+1, err))
	}
	return out, nil
}

func parseExpectation(text string) (Expectation, error) {
	// The last arrow separates: a command may hold "->" itself.
	text = strings.ReplaceAll(text, "→", "->")
	i := strings.LastIndex(text, "->")
	if i < 0 {
		return Expectation{}, fmt.Errorf(`want "USER TARGET LOGIN [COMMAND] -> allow|deny", got %q`, text)
	}
	lhs, verdict := text[:i], text[i+2:]
	e := Expectation{Text: text}
	switch strings.TrimSpace(verdict) {
	case "allow":
		e.Allow = true
	case "deny":
	default:
		return Expectation{}, fmt.Errorf("the expected decision is %q; want allow or deny", strings.TrimSpace(verdict))
	}
	f := strings.Fields(lhs)
	if len(f) < 3 {
		return Expectation{}, fmt.Errorf("want USER TARGET LOGIN before the arrow, got %q", strings.TrimSpace(lhs))
	}
	user, groups, err := parseSubject(f[0])
	if err != nil {
		return Expectation{}, err
	}
	e.Request = Request{User: user, Groups: groups, Target: Target{Name: f[1]}, Login: f[2]}
	if len(f) > 3 {
		// The command keeps its own spacing: cut after the login word.
		rest := strings.TrimSpace(lhs)
		for _, w := range f[:3] {
			rest = strings.TrimSpace(strings.TrimPrefix(rest, w))
		}
		e.Request.Command = rest
	}
	return e, nil
}

// parseSubject reads "alice" or "alice[devs,ops]".
func parseSubject(s string) (string, []string, error) {
	name, groups, ok := strings.Cut(s, "[")
	if !ok {
		return s, nil, nil
	}
	list, ok := strings.CutSuffix(groups, "]")
	if !ok || name == "" || list == "" {
		return "", nil, fmt.Errorf("bad user %q: want NAME or NAME[GROUP,...]", s)
	}
	return name, strings.Split(list, ","), nil
}
