package config

import (
	"net"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// GatewayHostNames are the names clients use to reach the gateway: the host
// of web.public_url and of ssh.listen, when they are specific addresses.
// With neither, the loopback names (the only ones its host certificate then
// carries besides these).
func (c *Config) GatewayHostNames() []string {
	var names []string
	add := func(h string) {
		h = strings.ToLower(h)
		if h != "" && h != "0.0.0.0" && h != "::" && !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	if u, err := url.Parse(c.Web.PublicURL); err == nil {
		add(u.Hostname())
	}
	if h, _, err := net.SplitHostPort(c.SSH.Listen); err == nil {
		add(h)
	}
	if len(names) == 0 {
		names = []string{"localhost", "127.0.0.1"}
	}
	return names
}

// HostCAPatterns are the known_hosts host patterns clients trust the host
// CA for: each gateway name, plain and as "[name]:port" for the SSH port
// (sshAddr, the listener's real address; empty means ssh.listen; port 0, not
// known yet, gives the plain name only), and every
// configured target name (the ProxyJump inner hosts). Never "*": the host
// CA vouches for nothing else the user connects to.
func (c *Config) HostCAPatterns(sshAddr string) []string {
	_, port, err := net.SplitHostPort(sshAddr)
	if err != nil || port == "0" || port == "" {
		_, port, _ = net.SplitHostPort(c.SSH.Listen)
	}
	var pats []string
	for _, h := range c.GatewayHostNames() {
		pats = append(pats, h)
		if port != "" && port != "22" && port != "0" {
			pats = append(pats, "["+h+"]:"+port)
		}
	}
	for _, t := range c.Targets {
		if !slices.Contains(pats, t.Name) {
			pats = append(pats, t.Name)
		}
	}
	return pats
}

// KnownHostsCALine is the scoped known_hosts line trusting caKey (the host
// CA) for HostCAPatterns(sshAddr):
//
//	@cert-authority gw.example.com,[gw.example.com]:2222,db-1,web-1 ssh-ed25519 AAAA... gatehouse-host-ca
func (c *Config) KnownHostsCALine(caKey ssh.PublicKey, sshAddr string) string {
	return "@cert-authority " + strings.Join(c.HostCAPatterns(sshAddr), ",") + " " +
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(caKey))) + " gatehouse-host-ca"
}
