package gateway

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/gatehouse/gatehouse/internal/sshalg"
)

// Address is what the SSH user name asks for: "login@target" for a direct
// session, or anything without '@' for the target menu (and ProxyJump, whose
// target arrives later in a direct-tcpip request).
type Address struct {
	Login  string // account on the target; empty in menu mode
	Target string // configured target name or "docker:<container>"; empty in menu mode
}

// Direct reports whether the address names a target.
func (a Address) Direct() bool { return a.Target != "" }

var (
	loginRE     = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.-]{0,31}\$?$`)
	targetRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	containerRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
)

// ErrBadAddress is wrapped by every user-name parse error.
var ErrBadAddress = errors.New("bad address")

// ParseAddress parses the SSH user name. "login@target" (the last '@'
// separates, so the gateway part is already gone) selects a target;
// "login@docker:container" a container on the default Docker host; a name
// without '@' selects the menu. Anything else is an error a user can act on.
func ParseAddress(user string) (Address, error) {
	if !strings.Contains(user, "@") {
		if user == "" || len(user) > 256 {
			return Address{}, fmt.Errorf("%w: empty or overlong user name", ErrBadAddress)
		}
		return Address{}, nil
	}
	login, target, _ := strings.Cut(user, "@")
	if strings.Contains(target, "@") {
		return Address{}, fmt.Errorf("%w: %q has more than one '@'; use login@target", ErrBadAddress, user)
	}
	if !loginRE.MatchString(login) {
		return Address{}, fmt.Errorf("%w: %q is not a valid login name", ErrBadAddress, login)
	}
	if name, ok := strings.CutPrefix(target, "docker:"); ok {
		if !containerRE.MatchString(name) {
			return Address{}, fmt.Errorf("%w: %q is not a valid container name or id", ErrBadAddress, name)
		}
		return Address{Login: login, Target: target}, nil
	}
	if !targetRE.MatchString(target) {
		return Address{}, fmt.Errorf("%w: %q is not a valid target name", ErrBadAddress, target)
	}
	return Address{Login: login, Target: target}, nil
}

// ErrLoginNotAllowed is wrapped when a login does not match the configured
// login pattern (ssh.login_pattern).
var ErrLoginNotAllowed = errors.New("login not allowed")

// checkUserName validates the SSH user name before any key is considered, so
// a typo gets a message instead of "Permission denied", and a login outside
// ssh.login_pattern is refused before policy runs. The inner connection of a
// ProxyJump carries only the login.
func (s *Server) checkUserName(user string, inner bool) error {
	if inner {
		if !loginRE.MatchString(user) {
			return fmt.Errorf("%q is not a valid login name", user)
		}
		return s.checkLogin(user)
	}
	a, err := ParseAddress(user)
	return s.checkAddress(a, err)
}

// checkName is checkUserName for a handshake, which parses the name once
// (authState.address) for everything that needs it.
func (s *Server) checkName(st *authState, user string, inner bool) error {
	if inner {
		return s.checkUserName(user, true)
	}
	return s.checkAddress(st.address(user))
}

// checkAddress is the outer connection's check of a parsed user name.
func (s *Server) checkAddress(a Address, err error) error {
	if err != nil || !a.Direct() {
		return err
	}
	return s.checkLogin(a.Login)
}

// checkLogin refuses a login the configured pattern does not match. Logins
// are refused, never normalised: "ROOT" is not quietly turned into "root",
// and it cannot pass a deny on "root" at a target whose account lookup
// ignores case.
func (s *Server) checkLogin(login string) error {
	re := s.cfg.LoginPattern
	if re == nil {
		re = defaultLoginRE
	}
	if re.MatchString(login) {
		return nil
	}
	hint := ""
	if lower := strings.ToLower(login); lower != login && re.MatchString(lower) {
		hint = fmt.Sprintf(" (did you mean %q?)", lower)
	}
	return fmt.Errorf("%w: %q: logins must match %s%s", ErrLoginNotAllowed, login, re, hint)
}

var defaultLoginRE = regexp.MustCompile(sshalg.DefaultLoginPattern)
