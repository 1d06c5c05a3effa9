package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/sshalg"
	"github.com/gatehouse/gatehouse/internal/usererr"
	"github.com/gatehouse/gatehouse/policy"
)

// Keys of ssh.Permissions.Extensions. The identity itself never travels
// there as text: permID is an opaque token into the authState of the
// handshake that issued it, whose principal the server owns. It is in the
// Permissions of the key that actually authenticated, so the identity is
// that key's (never "the last key offered": CVE-2024-45337).
const (
	permID    = "gatehouse.id"
	permPlain = "gatehouse.plainkey" // a plain key's fingerprint, between PublicKeyCallback and VerifiedPublicKeyCallback
)

// principal is the authenticated user of a connection.
type principal struct {
	auth.Identity
	Serial      uint64 // user certificate serial (0 for browser approvals)
	Fingerprint string
	Via         string // certificate | approval
	// Expires is the user certificate's end (ValidBefore); sessions end
	// then. Zero for browser approvals (no certificate).
	Expires time.Time
}

// authState is what one connection's authentication has learned so far.
// The callbacks of one connection run one after another, never at once,
// and the handshake's caller reads it only once they are done.
type authState struct {
	// locked is set when a lock refused this connection's certificate: a
	// lock refuses, it never opens another way in (no approval code).
	locked error
	// inner is the ProxyJump target this handshake is for; "" for a
	// connection to the gateway itself.
	inner string
	// ids are the principals this handshake accepted, by the token in
	// their Permissions (permID).
	ids map[string]*principal
	// user is the SSH user name addr (or addrErr) was parsed from: the
	// address is parsed once per name a client tries (nearly always one).
	parsed  bool
	user    string
	addr    Address
	addrErr error
}

// issue records pr as an identity this handshake accepted and returns the
// Permissions that name it.
func (st *authState) issue(pr principal, critical map[string]string) *ssh.Permissions {
	if st.ids == nil {
		st.ids = map[string]*principal{}
	}
	tok := newID()
	st.ids[tok] = &pr
	return &ssh.Permissions{CriticalOptions: critical, Extensions: map[string]string{permID: tok}}
}

// principal returns the identity perms name, or an error when they name
// none this handshake accepted.
func (st *authState) principal(perms *ssh.Permissions) (*principal, error) {
	if perms != nil {
		if pr := st.ids[perms.Extensions[permID]]; pr != nil {
			return pr, nil
		}
	}
	return nil, errors.New("gateway: connection has no authenticated identity")
}

// address is the login and target the SSH user name asks for: for a
// ProxyJump inner connection the name is the login and the target is the
// jump's; otherwise login@target (or a name alone: the menu).
func (st *authState) address(user string) (Address, error) {
	if st.parsed && user == st.user {
		return st.addr, st.addrErr
	}
	st.parsed, st.user = true, user
	if st.inner != "" {
		st.addr, st.addrErr = Address{Login: user, Target: st.inner}, nil
	} else {
		st.addr, st.addrErr = ParseAddress(user)
	}
	return st.addr, st.addrErr
}

// authConfig returns the ssh.ServerConfig for one connection, whose
// callbacks record what they learn in st. hostPrincipals
// name the host certificate presented (the gateway's names, or the target
// name for a ProxyJump inner connection). ctx is the handshake's context: it
// ends when the client goes away or the server shuts down.
func (s *Server) authConfig(ctx context.Context, st *authState, hostPrincipals []string, inner bool) (*ssh.ServerConfig, error) {
	cfg := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-Gatehouse",
		MaxAuthTries:  6,
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if err := s.checkName(st, meta.User(), inner); err != nil {
				return nil, &ssh.BannerError{Err: err, Message: "gatehouse: " + err.Error() + "\n"}
			}
			return s.publicKey(meta, key, st)
		},
		VerifiedPublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, alg string) (*ssh.Permissions, error) {
			if perms.Extensions[permPlain] != "" {
				return s.plainKey(ctx, meta, perms.Extensions[permPlain], st)
			}
			return s.maybeSessionMFA(meta, perms, st)
		},
		AuthLogCallback: s.authLog,
	}
	algs := s.algorithms()
	cfg.Config = ssh.Config{Ciphers: algs.Ciphers, KeyExchanges: algs.KeyExchanges, MACs: algs.MACs}
	cfg.PublicKeyAuthAlgorithms = publicKeyAuths
	hs, err := s.hostSigner(ctx, hostPrincipals)
	if err != nil {
		return nil, err
	}
	for _, k := range []ssh.Signer{s.cfg.Authority.HostKey(), hs} {
		if slices.Contains(algs.HostKeys, k.PublicKey().Type()) {
			cfg.AddHostKey(k)
		}
	}
	return cfg, nil
}

// lockBanner is the refusal a locked user sees (lock refusals carry their
// message: see lockError).
func lockBanner(err error) error {
	msg, _ := usererr.Message(err)
	return &ssh.BannerError{Err: err, Message: "gatehouse: " + msg + "\n"}
}

// banner is the refusal a person reads for err: its user-visible message
// (usererr), or the generic line whose reference is logged here with err.
func (s *Server) banner(err error) *ssh.BannerError {
	msg, ref := usererr.Message(err)
	if ref != "" {
		s.log.Warn("ssh login refused", "ref", ref, "err", err)
	}
	return &ssh.BannerError{Err: err, Message: "gatehouse: " + msg + "\n"}
}

// publicKeyAuths are the client key algorithms accepted: no ssh-rsa (SHA-1),
// no DSA. One slice for every connection: x/crypto keeps the connection's
// config, and with it this slice, for the connection's life and only reads
// it (ssh.SupportedAlgorithms makes five fresh slices per call).
var publicKeyAuths = ssh.SupportedAlgorithms().PublicKeyAuths

// algorithms are the configured SSH algorithms, or the defaults.
func (s *Server) algorithms() ssh.Algorithms {
	or := func(l, def []string) []string {
		if len(l) == 0 {
			return def
		}
		return l
	}
	return ssh.Algorithms{
		Ciphers:      or(s.cfg.Ciphers, sshalg.DefaultCiphers),
		KeyExchanges: or(s.cfg.KeyExchanges, sshalg.DefaultKeyExchanges),
		MACs:         or(s.cfg.MACs, sshalg.DefaultMACs),
		HostKeys:     or(s.cfg.HostKeyAlgorithms, sshalg.DefaultHostKeyTypes),
	}
}

// publicKey accepts Gatehouse user certificates, and plain keys when an
// Approver can complete the login in the browser.
func (s *Server) publicKey(meta ssh.ConnMetadata, key ssh.PublicKey, st *authState) (*ssh.Permissions, error) {
	if st.locked != nil {
		return nil, lockBanner(st.locked)
	}
	if _, isCert := key.(*ssh.Certificate); !isCert {
		if s.cfg.Approver == nil {
			// No banner: OpenSSH often offers the plain key before its
			// certificate, and a refusal here is not the last word.
			return nil, auth.ErrNotCertificate
		}
		return &ssh.Permissions{Extensions: map[string]string{permPlain: ssh.FingerprintSHA256(key)}}, nil
	}
	id, cert, err := s.cfg.Authority.CheckUserCert(key, meta.RemoteAddr())
	if err != nil {
		return nil, s.banner(err)
	}
	fp := ssh.FingerprintSHA256(cert.Key)
	if s.cfg.Approver != nil {
		s.cfg.Approver.Remember(fp, id.User)
	}
	if err := s.lockError(id.User); err != nil {
		st.locked = err
		return nil, lockBanner(err)
	}
	pr := principal{Identity: id, Serial: cert.Serial, Fingerprint: fp, Via: "certificate"}
	if cert.ValidBefore < uint64(1)<<62 {
		pr.Expires = time.Unix(int64(cert.ValidBefore), 0)
	}
	return st.issue(pr, cert.CriticalOptions), nil
}

// approvalRequest describes what a plain-key login asks for.
func approvalRequest(meta ssh.ConnMetadata, fp string, st *authState) auth.ApprovalRequest {
	req := auth.ApprovalRequest{KeyFingerprint: fp, ClientAddr: meta.RemoteAddr().String(),
		ClientVersion: string(meta.ClientVersion())}
	if a, err := st.address(meta.User()); err == nil {
		req.Login, req.Target = a.Login, a.Target
	}
	return req
}

// plainKey runs once the client proved it holds a plain key. A key known to
// belong to a locked user is refused; an approval of this very request
// (key, source IP, login@target) within the window is reused; anything else
// goes on to the browser approval (keyboard-interactive).
func (s *Server) plainKey(ctx context.Context, meta ssh.ConnMetadata, fp string, st *authState) (*ssh.Permissions, error) {
	if err := s.knownKeyLocked(fp); err != nil {
		return nil, lockBanner(err)
	}
	req := approvalRequest(meta, fp, st)
	if id, ok := s.cfg.Approver.Reuse(req); ok {
		if err := s.lockError(id.User); err != nil {
			return nil, lockBanner(err)
		}
		return s.maybeSessionMFA(meta, st.issue(principal{Identity: id, Fingerprint: fp, Via: "approval"}, nil), st)
	}
	return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: func(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			return s.approve(ctx, client, req, st)
		},
	}}
}

// knownKeyLocked is the lock refusal for a key known to belong to a locked
// user, or nil.
func (s *Server) knownKeyLocked(fp string) error {
	if user, ok := s.cfg.Approver.KnownUser(fp); ok {
		return s.lockError(user)
	}
	return nil
}

func innerTarget(hostPrincipals []string, inner bool) string {
	if inner && len(hostPrincipals) == 1 {
		return hostPrincipals[0]
	}
	return ""
}

// requiresSessionMFA reports whether a role that allows this login on this
// target asks for a fresh TOTP code for every session.
func (s *Server) requiresSessionMFA(pr *principal, login, tname string) bool {
	pt := policy.Target{Name: tname}
	if t, ok := s.target(tname); ok {
		pt = t.Policy()
	}
	return s.cfg.Policy.RequireSessionMFA(pr.User, pr.Groups, pt, login)
}

// maybeSessionMFA asks for a fresh TOTP code at the ssh prompt when a role
// that allows this login on this target requires per-session MFA.
func (s *Server) maybeSessionMFA(meta ssh.ConnMetadata, perms *ssh.Permissions, st *authState) (*ssh.Permissions, error) {
	if s.cfg.Approver == nil {
		return perms, nil
	}
	a, err := st.address(meta.User())
	if err != nil || !a.Direct() {
		return perms, nil
	}
	pr, err := st.principal(perms)
	if err != nil {
		return nil, err
	}
	if !s.requiresSessionMFA(pr, a.Login, a.Target) {
		return perms, nil
	}
	return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: func(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			return s.sessionMFA(client, perms, pr, a.Target)
		},
	}}
}

// sessionMFA prompts for a TOTP code (three prompts) and marks the identity
// as freshly verified. An empty answer (an unattended ssh has nobody to type)
// is not a guess: it is not checked and cannot lock the user's TOTP.
func (s *Server) sessionMFA(client ssh.KeyboardInteractiveChallenge, perms *ssh.Permissions, pr *principal, target string) (*ssh.Permissions, error) {
	user := pr.User
	instr := fmt.Sprintf("Your role requires a fresh TOTP code for every session to %s.", target)
	lastErr := auth.ErrTOTPEmpty
	for try := 0; try < 3; try++ {
		ans, err := client("Gatehouse", instr, []string{"TOTP code for " + user + ": "}, []bool{false})
		if err != nil {
			return nil, err
		}
		if len(ans) != 1 {
			return nil, errors.New("gateway: expected one answer")
		}
		if strings.TrimSpace(ans[0]) == "" {
			instr = "No code was entered; type the 6-digit code from your authenticator."
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lastErr = s.cfg.Approver.VerifyTOTP(ctx, user, ans[0])
		cancel()
		if lastErr == nil {
			pr.MFAAt = s.now()
			return perms, nil
		}
		if errors.Is(lastErr, auth.ErrTOTPLocked) {
			break
		}
		instr = "That code was not accepted; try the next one."
	}
	msg := "gatehouse: TOTP code not accepted\n"
	switch {
	case errors.Is(lastErr, auth.ErrTOTPEmpty):
		msg = "gatehouse: no TOTP code entered\n"
	case errors.Is(lastErr, auth.ErrTOTPLocked):
		return nil, s.banner(lastErr)
	}
	return nil, &ssh.BannerError{Err: lastErr, Message: msg}
}

// approvalWait bounds how long a plain-ssh login waits for the browser.
const approvalWait = 5 * time.Minute

// approve shows the approval URL and code, and waits for the browser. The
// handshake deadline is lifted while it waits; the wait ends with the
// connection (client gone), the server (shutdown) or approvalWait.
func (s *Server) approve(ctx context.Context, client ssh.KeyboardInteractiveChallenge, req auth.ApprovalRequest, st *authState) (*ssh.Permissions, error) {
	if err := s.knownKeyLocked(req.KeyFingerprint); err != nil {
		return nil, lockBanner(err)
	}
	release := holdHandshake(ctx)
	defer release()
	p, err := s.cfg.Approver.Begin(ctx, req)
	if err != nil {
		return nil, s.banner(err)
	}
	defer p.Close()
	instr := fmt.Sprintf("To log in to %s, open %s\nand check that it shows the code %s. Waiting up to %s...\n",
		req.Asked(), p.URL, p.Code, approvalWait)
	if _, err := client("Gatehouse login", instr, nil, nil); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, approvalWait)
	defer cancel()
	id, err := p.Wait(wctx)
	if err != nil {
		return nil, approvalRefusal(err)
	}
	if err := s.lockError(id.User); err != nil {
		return nil, lockBanner(err)
	}
	perms := st.issue(principal{Identity: id, Fingerprint: req.KeyFingerprint, Via: "approval"}, nil)
	pr, _ := st.principal(perms)
	if req.Target != "" && s.requiresSessionMFA(pr, req.Login, req.Target) && id.MFAAt.Before(p.Created) {
		// The approval page asks for TOTP when the role needs it; should an
		// approval arrive without it, ask here.
		return s.sessionMFA(client, perms, pr, req.Target)
	}
	return perms, nil
}

// approvalRefusal is what the user sees when a wait for approval ends
// without one.
func approvalRefusal(err error) error {
	msg := "gatehouse: login was not approved\n"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		msg = "gatehouse: login not approved in time; run ssh again\n"
	case errors.Is(err, errShutdown):
		msg = "gatehouse: " + errShutdown.Error() + "; run ssh again in a moment\n"
	}
	return &ssh.BannerError{Err: err, Message: msg}
}
