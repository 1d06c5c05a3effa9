package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/sshalg"
)

// The default SSH algorithms of both legs (see package sshalg, which the
// gateway shares).
var (
	DefaultKeyExchanges = sshalg.DefaultKeyExchanges
	DefaultCiphers      = sshalg.DefaultCiphers
	DefaultMACs         = sshalg.DefaultMACs
	DefaultHostKeyTypes = sshalg.DefaultHostKeyTypes
)

// MaxSessionTTL caps certificates.session_ttl: per-session certificates
// live minutes, not hours.
const MaxSessionTTL = 15 * time.Minute

// DefaultLoginPattern is the grammar of target logins (lower case only;
// see sshalg.DefaultLoginPattern).
const DefaultLoginPattern = sshalg.DefaultLoginPattern

// applyAlgorithmDefaults fills empty algorithm lists and the login pattern.
func (s *SSH) applyAlgorithmDefaults() {
	for _, a := range []struct {
		list *[]string
		def  []string
	}{{&s.KeyExchanges, DefaultKeyExchanges}, {&s.Ciphers, DefaultCiphers}, {&s.MACs, DefaultMACs}, {&s.HostKeyTypes, DefaultHostKeyTypes}} {
		if len(*a.list) == 0 {
			*a.list = slices.Clone(a.def)
		}
	}
	if s.LoginPattern == "" {
		s.LoginPattern = DefaultLoginPattern
	}
}

// validateSSHAlgorithms refuses unknown or weak algorithm names and a login
// pattern that does not compile, in one line naming the key.
func (c *Config) validateSSHAlgorithms() error {
	sup, weak := ssh.SupportedAlgorithms(), ssh.InsecureAlgorithms()
	for _, a := range []struct {
		key      string
		names    []string
		ok, weak []string
	}{
		{"ssh.kex", c.SSH.KeyExchanges, append(sup.KeyExchanges, "curve25519-sha256@libssh.org"), weak.KeyExchanges},
		{"ssh.ciphers", c.SSH.Ciphers, sup.Ciphers, weak.Ciphers},
		{"ssh.macs", c.SSH.MACs, sup.MACs, append(weak.MACs, ssh.HMACSHA1)},
		{"ssh.host_key_types", c.SSH.HostKeyTypes, sup.HostKeys, append(weak.HostKeys, ssh.KeyAlgoRSA, ssh.CertAlgoRSAv01)},
	} {
		for _, n := range a.names {
			switch {
			case slices.Contains(a.weak, n):
				return c.fail(a.key, "%q is weak (SHA-1 or broken) and not accepted; remove it", n)
			case !slices.Contains(a.ok, n):
				return c.fail(a.key, "unknown algorithm %q (known: %s)", n, strings.Join(a.ok, ", "))
			}
		}
	}
	if !slices.Contains(c.SSH.HostKeyTypes, ssh.KeyAlgoED25519) && !slices.Contains(c.SSH.HostKeyTypes, ssh.CertAlgoED25519v01) {
		return c.fail("ssh.host_key_types", "must include %s or %s: the gateway's host key is Ed25519", ssh.KeyAlgoED25519, ssh.CertAlgoED25519v01)
	}
	if t := c.Certs.SessionTTL; t <= 0 || t > MaxSessionTTL {
		return c.fail("certificates.session_ttl", "%s: want more than 0 and at most %s (a per-session certificate only has to outlive the target's authentication)", t, MaxSessionTTL)
	}
	if err := c.checkPinnedKeyTypes(); err != nil {
		return err
	}
	re, err := regexp.Compile(c.SSH.LoginPattern)
	if err != nil {
		return c.fail("ssh.login_pattern", "not a regular expression: %v", err)
	}
	if !strings.HasPrefix(c.SSH.LoginPattern, "^") || !strings.HasSuffix(c.SSH.LoginPattern, "$") {
		return c.fail("ssh.login_pattern", "%q must be anchored with ^ and $ (it must match the whole login)", c.SSH.LoginPattern)
	}
	c.SSH.loginRE = re
	return nil
}

// LoginRE is the compiled ssh.login_pattern (after Parse).
func (s *SSH) LoginRE() *regexp.Regexp {
	if s.loginRE == nil {
		return regexp.MustCompile(DefaultLoginPattern)
	}
	return s.loginRE
}

// ValidLogin reports whether login matches ssh.login_pattern.
func (s *SSH) ValidLogin(login string) bool { return s.LoginRE().MatchString(login) }

// checkPinnedKeyTypes refuses a target pinned to a host key whose type
// ssh.host_key_types does not allow: its handshake could never succeed.
func (c *Config) checkPinnedKeyTypes() error {
	for i, t := range c.Targets {
		k, err := ParseAuthorizedKey(t.HostKey)
		if t.HostKey == "" || err != nil {
			continue // validateTargets reports bad keys
		}
		algs := []string{k.Type()}
		if k.Type() == ssh.KeyAlgoRSA {
			algs = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
		}
		if !slices.ContainsFunc(algs, func(a string) bool { return slices.Contains(c.SSH.HostKeyTypes, a) }) {
			return c.fail(fmt.Sprintf("targets[%d].host_key", i), "%s keys are not allowed by ssh.host_key_types; pin the target's ssh-ed25519 key (ssh-keyscan -t ed25519 HOST) or add %s to ssh.host_key_types",
				k.Type(), algs[0])
		}
	}
	return nil
}
