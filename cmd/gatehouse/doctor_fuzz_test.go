package main

import (
	"strings"
	"testing"
)

// FuzzParseSSHDT: sshd -T output comes from the target, which doctor does
// not trust; parsing it must never panic, and every key it returns is a
// whole first word of some line.
func FuzzParseSSHDT(f *testing.F) {
	f.Add("authorizedprincipalsfile none\nauthorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2\npasswordauthentication no\n")
	f.Add("trustedusercakeys /etc/ssh/ca.pub\r\n\n\nx\n")
	f.Fuzz(func(t *testing.T, out string) {
		m := parseSSHDT(out)
		for k := range m {
			if k == "" || strings.ContainsAny(k, " \n") {
				t.Fatalf("key %q", k)
			}
		}
	})
}
