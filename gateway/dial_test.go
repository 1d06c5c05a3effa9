package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/target"
)

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hostCert certifies host's key for principals, signed by ca.
func hostCert(t *testing.T, ca, host ssh.Signer, principals ...string) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{Key: host.PublicKey(), CertType: ssh.HostCert, ValidPrincipals: principals,
		ValidBefore: ssh.CertTimeInfinity, Serial: 1}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHostKeyCallback: the resolved target's parsed keys decide which host
// keys a dial accepts — exactly the pinned key, or a host certificate for
// the target's name or address from its own host CA; anything a
// man-in-the-middle holds (another key, a certificate from another CA or
// for another name, a user certificate) is refused with the same line.
func TestHostKeyCallback(t *testing.T) {
	ca, otherCA, host, other := newSigner(t), newSigner(t), newSigner(t), newSigner(t)
	pinned := Target{Name: "db-1", Kind: "ssh", Address: "127.0.0.1:22", HostKey: host.PublicKey()}
	byCA := Target{Name: "db-1", Kind: "ssh", Address: "10.0.0.7:22", HostCA: ca.PublicKey()}
	userCert := hostCert(t, ca, host, "db-1")
	userCert.CertType = ssh.UserCert
	if err := userCert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}
	tests := []struct {
		name string
		t    Target
		key  ssh.PublicKey
		ok   bool
	}{
		{"pinned key", pinned, host.PublicKey(), true},
		{"another key", pinned, other.PublicKey(), false},
		{"pinned key in a certificate from an unknown CA", pinned, hostCert(t, otherCA, host, "db-1"), true},
		{"CA certificate for the name", byCA, hostCert(t, ca, host, "db-1"), true},
		{"CA certificate for the address", byCA, hostCert(t, ca, host, "10.0.0.7"), true},
		{"CA certificate for another name", byCA, hostCert(t, ca, host, "db-2"), false},
		{"certificate from another CA", byCA, hostCert(t, otherCA, host, "db-1"), false},
		{"user certificate from the CA", byCA, userCert, false},
		{"plain key on a CA-only target", byCA, host.PublicKey(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := hostKeyCallback(tc.t)("db-1:22", addr, tc.key)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			want := "target db-1 presented an unknown host key SHA256:"
			if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, target.ErrHostKeyMismatch) {
				t.Fatalf("accepted or wrong refusal: %v", err)
			}
		})
	}
}

// TestTargetRegistryRefusesUnusableTargets: the registry takes a whole set
// of targets or none, refusing one that could never be dialled safely in
// one line that names it.
func TestTargetRegistryRefusesUnusableTargets(t *testing.T) {
	key := newSigner(t).PublicKey()
	good := Target{Name: "db-1", Kind: "ssh", Address: "127.0.0.1:22", HostKey: key}
	var r registry
	if err := r.set([]Target{good}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{Name: "db-2", Kind: "ssh", Address: "127.0.0.1:22"}, `gateway: target "db-2" has neither a host key nor a host CA: unknown host keys are refused`},
		{Target{Name: "db-3", Kind: "ssh", HostKey: key}, `gateway: target "db-3" has no address`},
		{Target{Name: "db-4", Kind: "telnet"}, `gateway: target "db-4": kind "telnet": want ssh or docker`},
		{good, `gateway: target "db-1" is defined twice`},
	} {
		if err := r.set([]Target{good, tc.t}); err == nil || err.Error() != tc.want {
			t.Errorf("set(%s) = %v, want %q", tc.t.Name, err, tc.want)
		}
	}
	if got := r.all(); len(got) != 1 || got[0].Name != "db-1" {
		t.Fatalf("a refused set changed the targets: %v", got)
	}
}
