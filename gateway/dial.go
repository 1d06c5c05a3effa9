package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/target"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// targetCiphers prefers AES-GCM on the gateway-to-target leg: with AES-NI it
// costs a fraction of ChaCha20-Poly1305 per byte, and both ends are ours to
// choose.
var targetCiphers = []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr"}

// dialBackend connects to the connection's target once; later callers share
// the connection (and its per-session certificate). It is never dialled for a
// user whose roles limit commands here: those sessions get their own
// connection from dialCommand.
func (c *clientConn) dialBackend() (target.Conn, error) {
	c.backendOnce.Do(func() {
		d0 := c.reach()
		if !d0.Allowed {
			// Fail closed: a shared connection's certificate has no
			// force-command, so it exists only for users allowed a shell.
			c.backendErr = fmt.Errorf("access denied: %s", d0.Reason)
			return
		}
		leg := &targetLeg{sessionID: c.id, portForward: d0.Options.PortForwarding, agentForward: d0.Options.AgentForwarding,
			incoming: c.targetIn}
		start := c.s.now()
		c.backend, c.backendErr = c.s.dialTarget(c, leg)
		if fn := c.s.cfg.OnTargetDial; fn != nil {
			fn(c.addr.Target, c.s.now().Sub(start), c.backendErr)
		}
		c.certSerial = leg.certSerial
		if c.backendErr != nil {
			c.s.log.Warn("target unreachable", "conn", c.id, "user", c.pr.User, "target", c.addr.Target, "err", c.backendErr)
			c.audit(unreachableEvent(c.addr.Target, c.backendErr))
		}
	})
	return c.backend, c.backendErr
}

// dialCommand opens a target connection for one command-restricted session:
// its certificate carries the approved command as force-command and allows
// no forwarding, so even a relay that let anything else through would have
// the target's sshd run that command only. The caller closes it.
func (c *clientConn) dialCommand(sessionID, force string) (target.Conn, uint64, error) {
	if c.commandConns.Add(1) > maxCommandConns {
		c.commandConns.Add(-1)
		err := fmt.Errorf("too many commands running at once on this connection (at most %d); wait for one to end or open another connection", maxCommandConns)
		c.audit(audit.Event{Type: audit.EventSessionDenied, SessionID: sessionID, Reason: err.Error(),
			Details: map[string]any{"stage": "connect", "force_command": force}})
		return nil, 0, err
	}
	release := sync.OnceFunc(func() { c.commandConns.Add(-1) })
	leg := &targetLeg{sessionID: sessionID, forceCommand: force}
	start := c.s.now()
	conn, err := c.s.dialTarget(c, leg)
	if fn := c.s.cfg.OnTargetDial; fn != nil {
		fn(c.addr.Target, c.s.now().Sub(start), err)
	}
	if err != nil {
		c.s.log.Warn("target unreachable", "conn", c.id, "session", sessionID, "user", c.pr.User, "target", c.addr.Target, "err", err)
		c.audit(unreachableEvent(c.addr.Target, err))
		release()
		return nil, 0, err
	}
	return &countedConn{Conn: conn, release: release}, leg.certSerial, nil
}

// maxCommandConns caps the target connections one client connection may
// hold for command-restricted sessions at once (each has its own), as
// OpenSSH's MaxSessions caps sessions on one connection.
const maxCommandConns = 10

// countedConn releases its slot in the connection's count when closed.
type countedConn struct {
	target.Conn
	release func()
}

func (c *countedConn) Close() error {
	defer c.release()
	return c.Conn.Close()
}

// targetLeg is what one connection to a target is minted for.
type targetLeg struct {
	sessionID    string
	forceCommand string // the only command the target may run; "" for none
	portForward  bool
	agentForward bool
	certSerial   uint64 // set by dialSSH
	// incoming, when set, receives what the target sends unasked (the
	// client connection's loop refuses it); else a goroutine refuses it.
	incoming chan<- targetIncoming
}

func (s *Server) dialTarget(c *clientConn, leg *targetLeg) (target.Conn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, s.cfg.TargetDialTimeout)
	defer cancel()
	t := c.resolved.cfg
	if t.Kind == "docker" {
		conn, err := s.cfg.Docker.Dial(ctx, t, c.resolved.container, c.addr.Login)
		if err != nil {
			return nil, fmt.Errorf("cannot reach container %s: %v", c.resolved.container, err)
		}
		return conn, nil
	}
	return s.dialSSH(ctx, c, t, leg)
}

// dialSSH connects to an OpenSSH target: TCP first, then a certificate for
// this session pinned to the local address of that very connection.
func (s *Server) dialSSH(ctx context.Context, c *clientConn, t Target, leg *targetLeg) (target.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.Address)
	if err != nil {
		return nil, &unreachableError{target: t.Name, why: shortNetErr(err)}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	local := nc.LocalAddr().(*net.TCPAddr).IP.String()
	// Past the TCP connect, the target is reachable: minting (a database
	// write) and the SSH handshake are bounded by the connection's own
	// handshake budget, not by the dial timeout, so a busy database or a
	// loaded target slows a session down rather than refusing it.
	budget := max(s.cfg.HandshakeTimeout, s.cfg.TargetDialTimeout)
	mctx, mcancel := context.WithTimeout(c.ctx, budget)
	defer mcancel()
	if dl, ok := mctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	// The certificate is minted while the target's sshd starts and the key
	// exchange runs; authentication, after the exchange, waits for it.
	// x/crypto's transport keeps the ClientConfig for the connection's life
	// (for key re-exchanges) and with it this auth callback: sc is emptied
	// once the handshake is over, so an idle connection does not keep the
	// certificate and its key (~2 KiB per session).
	minted := make(chan struct{})
	var sc *auth.SessionCert
	var mintErr error
	go func() {
		defer close(minted)
		sc, mintErr = s.cfg.Authority.MintSessionCert(mctx, auth.SessionCertRequest{
			User: c.pr.User, SessionID: leg.sessionID, Login: c.addr.Login, SourceAddress: local, TTL: s.cfg.SessionCertTTL,
			PTY: true, PortForward: leg.portForward, AgentForward: leg.agentForward, ForceCommand: leg.forceCommand,
		})
	}()
	signers := func() ([]ssh.Signer, error) {
		<-minted
		if mintErr != nil {
			return nil, mintErr
		}
		return []ssh.Signer{sc.Signer}, nil
	}
	algs := s.algorithms()
	ccfg := &ssh.ClientConfig{
		User:            c.addr.Login,
		Auth:            []ssh.AuthMethod{ssh.PublicKeysCallback(signers)},
		HostKeyCallback: hostKeyCallback(t),
		ClientVersion:   "SSH-2.0-Gatehouse",
		Config: ssh.Config{Ciphers: preferred(targetCiphers, algs.Ciphers), KeyExchanges: algs.KeyExchanges,
			MACs: algs.MACs},
		HostKeyAlgorithms: targetHostKeyAlgorithms(t, algs.HostKeys),
	}
	conn, chans, reqs, err := ssh.NewClientConn(newBufConn(nc), t.Address, ccfg)
	<-minted
	if mintErr != nil {
		nc.Close()
		return nil, fmt.Errorf("cannot mint a session certificate: %v", mintErr)
	}
	leg.certSerial = sc.Cert.Serial
	sc = nil // authentication is over either way (it ran in this goroutine)
	if err != nil {
		nc.Close()
		return nil, handshakeError(t, c.addr.Login, err)
	}
	nc.SetDeadline(timeZero)
	if leg.agentForward {
		client := ssh.NewClient(conn, chans, reqs)
		go c.serveAgent(client.HandleChannelOpen("auth-agent@openssh.com"))
		return client, nil
	}
	if leg.incoming != nil {
		leg.incoming <- targetIncoming{chans, reqs}
	} else {
		go serveTargetIncoming(chans, reqs)
	}
	return conn, nil
}

// preferred orders allowed by pref first (in pref's order), then the rest
// of allowed: the configured list decides what may be used, pref only the
// order.
func preferred(pref, allowed []string) []string {
	var out []string
	for _, p := range pref {
		if slices.Contains(allowed, p) {
			out = append(out, p)
		}
	}
	for _, a := range allowed {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// targetHostKeyAlgorithms are the host key algorithms to accept from t:
// those of its pinned key (plain, and certified when it also has a host
// CA), or any allowed one for a host-CA-only target, always within allowed
// (so never ssh-rsa SHA-1 signatures by default). An empty result is
// replaced by allowed, so the handshake fails with a readable reason.
func targetHostKeyAlgorithms(t Target, allowed []string) []string {
	k := t.HostKey
	if k == nil {
		return allowed
	}
	want := hostKeyAlgorithms(k.Type())
	if t.HostCA != nil {
		want = append(certAlgorithms(k.Type()), want...)
	}
	var out []string
	for _, w := range want {
		if slices.Contains(allowed, w) {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		return allowed
	}
	return out
}

func hostKeyAlgorithms(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// certAlgorithms are the host certificate algorithms for a key type.
func certAlgorithms(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01}
	case ssh.KeyAlgoED25519:
		return []string{ssh.CertAlgoED25519v01}
	case ssh.KeyAlgoECDSA256:
		return []string{ssh.CertAlgoECDSA256v01}
	case ssh.KeyAlgoECDSA384:
		return []string{ssh.CertAlgoECDSA384v01}
	case ssh.KeyAlgoECDSA521:
		return []string{ssh.CertAlgoECDSA521v01}
	}
	return nil
}

// hostKeyError is the user-facing host key failure.
type hostKeyError struct {
	target, seen string
}

func (e *hostKeyError) Error() string {
	return fmt.Sprintf("target %s presented an unknown host key %s; refusing to connect (ask an admin to check the target and its host_key/host_ca)", e.target, e.seen)
}

func (e *hostKeyError) Unwrap() error { return target.ErrHostKeyMismatch }

// hostKeyCallback accepts exactly the pinned key, or a host certificate for
// the target's name or address signed by the configured host CA. x/crypto
// keeps the callback for the connection's life: it holds only the four
// fields it checks, not a copy of the whole Target.
func hostKeyCallback(t Target) ssh.HostKeyCallback {
	name, address, hostKey, hostCA := t.Name, t.Address, t.HostKey, t.HostCA
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		plain := key
		if cert, ok := key.(*ssh.Certificate); ok {
			plain = cert.Key
			if hostCA != nil && hostCertOK(hostCA, name, address, cert) {
				return nil
			}
		}
		if hostKey != nil && bytes.Equal(hostKey.Marshal(), plain.Marshal()) {
			return nil
		}
		return &hostKeyError{target: name, seen: ssh.FingerprintSHA256(plain)}
	}
}

// hostCertOK reports whether cert is a host certificate signed by hostCA
// for the target's name or the host of its address.
func hostCertOK(hostCA ssh.PublicKey, name, address string, cert *ssh.Certificate) bool {
	ca := hostCA.Marshal()
	if cert.CertType != ssh.HostCert || !bytes.Equal(cert.SignatureKey.Marshal(), ca) {
		return false
	}
	host, _, _ := net.SplitHostPort(address)
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), ca) }}
	for _, n := range []string{name, host} {
		if checker.CheckCert(n, cert) == nil {
			return true
		}
	}
	return false
}

// handshakeError turns a failed SSH handshake with a target into one line.
func handshakeError(t Target, login string, err error) error {
	var hk *hostKeyError
	switch {
	case errors.As(err, &hk):
		return hk
	case strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Errorf("%s refused the login %q: check that its sshd trusts the Gatehouse session CA (TrustedUserCAKeys from 'gatehouse ca public --target') and that the account exists", t.Name, login)
	}
	return &unreachableError{target: t.Name, why: shortNetErr(err)}
}

// unreachableError is the user-facing "cannot reach" line.
type unreachableError struct{ target, why string }

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach %s (%s)", e.target, e.why)
}
func (e *unreachableError) Unwrap() error { return target.ErrUnreachable }

// shortNetErr reduces a network error to its cause ("connection refused",
// "i/o timeout", "no route to host").
func shortNetErr(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

var timeZero = time.Time{}

func unreachableEvent(target string, err error) audit.Event {
	return audit.Event{Type: audit.EventSessionDenied, Target: target, Reason: err.Error(),
		Details: map[string]any{"stage": "connect"}}
}

// serveAgent relays agent requests from the target back to the user's own
// ssh-agent (only when a role allows agent forwarding and the client asked).
func (c *clientConn) serveAgent(chans <-chan ssh.NewChannel) {
	for nc := range chans {
		go func() {
			cch, creqs, err := c.sc.OpenChannel("auth-agent@openssh.com", nil)
			if err != nil {
				nc.Reject(ssh.ConnectionFailed, "gatehouse: the client offers no agent")
				return
			}
			go ssh.DiscardRequests(creqs)
			tch, treqs, err := nc.Accept()
			if err != nil {
				cch.Close()
				return
			}
			go ssh.DiscardRequests(treqs)
			pipeBoth(tch, cch, nil)
		}()
	}
}
