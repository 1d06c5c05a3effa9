package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/config"
)

// targetProbe is doctor's view of one ssh target.
type targetProbe struct {
	t       config.Target
	login   string
	ca      *auth.Authority
	timeout time.Duration
	r       *report
}

// probeTarget connects to t and reports whether its sshd is set up the way
// Gatehouse needs: the pinned host key, passwords refused, the session CA
// trusted, the user CA not trusted, principals restricted, no static keys.
func probeTarget(ctx context.Context, t config.Target, login string, ca *auth.Authority, timeout time.Duration) []finding {
	p := &targetProbe{t: t, login: login, ca: ca, timeout: probeTimeout(timeout), r: &report{subject: "target " + t.Name}}
	if t.Kind != "ssh" {
		p.r.add(lvWarn, fmt.Sprintf("kind %s: doctor checks OpenSSH targets only", t.Kind), "")
		return p.r.findings
	}
	if !p.checkHostKey() {
		return p.r.findings
	}
	p.checkPasswords()
	client, ok := p.checkSessionCA(ctx)
	p.checkUserCARefused()
	if ok {
		p.checkEffectiveConfig(client)
		client.Close()
	}
	return p.r.findings
}

// dial opens a TCP connection to the target.
func (p *targetProbe) dial() (net.Conn, error) {
	return net.DialTimeout("tcp", p.t.Address, p.timeout)
}

// handshake runs an SSH handshake with auth methods, checking the host key
// as the gateway does.
func (p *targetProbe) handshake(methods ...ssh.AuthMethod) (*ssh.Client, net.Conn, error) {
	nc, err := p.dial()
	if err != nil {
		return nil, nil, err
	}
	nc.SetDeadline(time.Now().Add(p.timeout))
	cfg := &ssh.ClientConfig{User: p.login, Auth: methods, HostKeyCallback: p.hostKeyCallback(nil), ClientVersion: "SSH-2.0-Gatehouse-doctor"}
	conn, chans, reqs, err := ssh.NewClientConn(nc, p.t.Address, cfg)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(conn, chans, reqs), nc, nil
}

// hostKeyCallback accepts the pinned key or a host certificate from the
// configured host CA; seen, if set, receives the presented key.
func (p *targetProbe) hostKeyCallback(seen *ssh.PublicKey) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if seen != nil {
			*seen = key
		}
		if cert, ok := key.(*ssh.Certificate); ok && p.t.HostCA != "" {
			ca, err := config.ParseAuthorizedKey(p.t.HostCA)
			if err == nil && cert.CertType == ssh.HostCert && bytes.Equal(cert.SignatureKey.Marshal(), ca.Marshal()) {
				host, _, _ := net.SplitHostPort(p.t.Address)
				checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), ca.Marshal()) }}
				if checker.CheckCert(p.t.Name, cert) == nil || checker.CheckCert(host, cert) == nil {
					return nil
				}
			}
		}
		plain := key
		if cert, ok := key.(*ssh.Certificate); ok {
			plain = cert.Key
		}
		if p.t.HostKey != "" {
			if pinned, err := config.ParseAuthorizedKey(p.t.HostKey); err == nil && bytes.Equal(pinned.Marshal(), plain.Marshal()) {
				return nil
			}
		}
		return errHostKey
	}
}

var errHostKey = errors.New("host key not trusted")

// checkHostKey reports whether the target presents the key the config pins
// (or a certificate from its host CA). Nothing else is sent to a target
// that fails this.
func (p *targetProbe) checkHostKey() bool {
	nc, err := p.dial()
	if err != nil {
		p.r.add(lvFail, fmt.Sprintf("cannot reach %s: %v", p.t.Address, shortErr(err)), "check targets[].address, the target's sshd and firewalls")
		return false
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(p.timeout))
	var seen ssh.PublicKey
	cfg := &ssh.ClientConfig{User: p.login, HostKeyCallback: p.hostKeyCallback(&seen), ClientVersion: "SSH-2.0-Gatehouse-doctor",
		HostKeyAlgorithms: p.hostKeyAlgorithms()}
	_, _, _, err = ssh.NewClientConn(nc, p.t.Address, cfg)
	if seen == nil {
		p.r.add(lvFail, fmt.Sprintf("SSH handshake with %s failed: %v", p.t.Address, shortErr(err)), "check that an OpenSSH sshd listens there")
		return false
	}
	if errors.Is(err, errHostKey) {
		p.r.add(lvFail, fmt.Sprintf("presents host key %s, which is not the pinned host_key nor certified by host_ca; not probing further", ssh.FingerprintSHA256(seen)),
			"compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the target (out of band: a different key may be an attacker) and set targets[].host_key")
		return false
	}
	if p.t.HostKey != "" {
		p.r.ok("presents the pinned host key %s", ssh.FingerprintSHA256(seen))
	} else {
		p.r.ok("presents a host certificate from the configured host_ca")
	}
	return true
}

// hostKeyAlgorithms asks for the pinned key's type, as the gateway does.
func (p *targetProbe) hostKeyAlgorithms() []string {
	if p.t.HostKey == "" {
		return nil
	}
	k, err := config.ParseAuthorizedKey(p.t.HostKey)
	if err != nil {
		return nil
	}
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{k.Type()}
}

// checkPasswords reports whether sshd offers password or keyboard-
// interactive authentication. The callbacks run only when the server lists
// the method; they never send anything.
func (p *targetProbe) checkPasswords() {
	offered := func(m ssh.AuthMethod) {
		if c, nc, err := p.handshake(m); err == nil {
			c.Close()
			nc.Close()
		}
	}
	var pw, kbd bool
	offered(ssh.PasswordCallback(func() (string, error) {
		pw = true
		return "", errors.New("doctor: probing only")
	}))
	offered(ssh.KeyboardInteractive(func(name, instr string, qs []string, echos []bool) ([]string, error) {
		kbd = true
		return nil, errors.New("doctor: probing only")
	}))
	switch {
	case pw:
		p.r.add(lvFail, "sshd accepts password authentication: a guessed or phished password opens the target without the gateway",
			`set "PasswordAuthentication no" in sshd_config and reload sshd`)
	case kbd:
		p.r.add(lvFail, "sshd offers keyboard-interactive authentication (usually passwords through PAM)",
			`set "KbdInteractiveAuthentication no" in sshd_config and reload sshd`)
	default:
		p.r.ok("refuses passwords (no password or keyboard-interactive authentication offered)")
	}
}

// checkSessionCA logs in with a per-session certificate, as the gateway
// does, and returns the client when the target accepts it.
func (p *targetProbe) checkSessionCA(ctx context.Context) (*ssh.Client, bool) {
	nc, err := p.dial()
	if err != nil {
		p.r.add(lvFail, "cannot reach the target again: "+shortErr(err), "")
		return nil, false
	}
	local := nc.LocalAddr().(*net.TCPAddr).IP.String()
	nc.Close()
	sc, err := p.ca.MintSessionCert(ctx, auth.SessionCertRequest{User: "doctor", SessionID: "doctor", Login: p.login,
		SourceAddress: local, TTL: time.Minute, PTY: false})
	if err != nil {
		p.r.add(lvFail, "cannot mint a session certificate: "+err.Error(), "")
		return nil, false
	}
	client, _, err := p.handshake(ssh.PublicKeys(sc.Signer))
	if err != nil {
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p.ca.SessionCAPublicKey())))
		p.r.add(lvFail, fmt.Sprintf("refuses a per-session certificate for login %q (%s)", p.login, shortErr(err)),
			fmt.Sprintf("put %q in the file named by TrustedUserCAKeys (gatehouse ca public --target), make sure the account %s exists and, with AuthorizedPrincipalsFile, that its file lists %s", line, p.login, p.login))
		return nil, false
	}
	p.r.ok("accepts per-session certificates from the session CA for login %q", p.login)
	return client, true
}

// checkUserCARefused tries a certificate from the user CA — what a person
// holds — naming the login. A target that accepts it can be reached without
// the gateway, unrecorded.
func (p *targetProbe) checkUserCARefused() {
	nc, err := p.dial()
	if err != nil {
		return
	}
	local := nc.LocalAddr().(*net.TCPAddr).IP.String()
	nc.Close()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return
	}
	key, _ := ssh.NewSignerFromKey(priv)
	now := time.Now()
	cert := &ssh.Certificate{Key: key.PublicKey(), CertType: ssh.UserCert, KeyId: "gatehouse-doctor-probe",
		ValidPrincipals: []string{p.login}, ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Minute).Unix()),
		Permissions: ssh.Permissions{CriticalOptions: map[string]string{"source-address": local}}}
	if err := cert.SignCert(rand.Reader, p.ca.UserCASigner()); err != nil {
		return
	}
	cs, _ := ssh.NewCertSigner(cert, key)
	client, _, err := p.handshake(ssh.PublicKeys(cs))
	if err == nil {
		client.Close()
		p.r.add(lvFail, "TRUSTS THE USER CA: a person's Gatehouse certificate logs in directly, unrecorded",
			"TrustedUserCAKeys must list only the session CA (gatehouse ca public --target); remove the user CA line and reload sshd")
		return
	}
	p.r.ok("refuses certificates from the user CA (what people hold)")
}

// checkEffectiveConfig reads sshd's effective configuration for the
// gateway's connection (sshd -T, which needs root) through the session.
func (p *targetProbe) checkEffectiveConfig(client *ssh.Client) {
	sess, err := client.NewSession()
	if err != nil {
		return
	}
	defer sess.Close()
	local, _, _ := net.SplitHostPort(client.LocalAddr().String())
	out, err := sess.Output(sshdTScript(p.login, local))
	conf := parseSSHDT(string(out))
	if err != nil || conf["authorizedprincipalsfile"] == "" {
		p.r.add(lvWarn, fmt.Sprintf("cannot read sshd's effective configuration as %q (sshd -T needs root); AuthorizedPrincipalsFile and AuthorizedKeysFile not checked", p.login),
			"run doctor with --login root, or check sshd_config by hand")
		return
	}
	if conf["authorizedprincipalsfile"] == "none" && conf["authorizedprincipalscommand"] == "none" {
		p.r.add(lvWarn, "no AuthorizedPrincipalsFile: the session CA may grant any account that exists on the target",
			"set \"AuthorizedPrincipalsFile /etc/ssh/auth_principals/%u\" and list, per account, the logins Gatehouse may use (one per line, e.g. root in /etc/ssh/auth_principals/root)")
	} else {
		p.r.ok("restricts certificate principals (AuthorizedPrincipalsFile %s)", conf["authorizedprincipalsfile"])
	}
	if akf := conf["authorizedkeysfile"]; akf != "" && akf != "none" {
		p.r.add(lvWarn, fmt.Sprintf("AuthorizedKeysFile %s: static keys on the target still open it without the gateway", akf),
			`set "AuthorizedKeysFile none" once every user goes through Gatehouse`)
	} else {
		p.r.ok("no static authorized keys (AuthorizedKeysFile none)")
	}
}

// sshdTScript prints sshd's effective configuration for a connection from
// the gateway: it finds the config file the listening sshd was started with
// (its -f argument, visible in its process title) and runs sshd -T on it.
func sshdTScript(login, gatewayIP string) string {
	return `cfg=/etc/ssh/sshd_config; p=$PPID
while [ "${p:-1}" -gt 1 ]; do
  c=$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)
  case "$c" in *"[listener]"*|*" -f "*) case "$c" in *" -f "*) cfg=$(printf '%s' "$c" | sed 's/.* -f \([^ ]*\).*/\1/');; esac; break;; esac
  p=$(awk '{print $4}' /proc/$p/stat 2>/dev/null)
done
PATH=$PATH:/usr/sbin:/sbin sshd -T -f "$cfg" -C user=` + login + `,host=gatehouse,addr=` + gatewayIP
}

// parseSSHDT parses `sshd -T` output (lower-case keyword, space, value).
func parseSSHDT(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok {
			if _, dup := m[k]; !dup {
				m[k] = v
			}
		}
	}
	return m
}

// shortErr keeps the cause of a network or SSH error.
func shortErr(err error) string {
	if err == nil {
		return "no error"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		return "sshd refused it"
	}
	return strings.TrimPrefix(err.Error(), "ssh: ")
}
