package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder"
)

// Keys of ssh.Permissions.Extensions that carry the authenticated identity.
// Identity travels in the Permissions of the key that actually authenticated
// (never "the last key offered": CVE-2024-45337).
const (
	permUser    = "gatehouse.user"
	permIssuer  = "gatehouse.issuer"
	permSubject = "gatehouse.subject"
	permGroups  = "gatehouse.groups"
	permMFA     = "gatehouse.mfa"
	permSerial  = "gatehouse.serial"
	permFP      = "gatehouse.fingerprint"
	permVia     = "gatehouse.via" // certificate | approval
	permPlain   = "gatehouse.plainkey"
)

// principal is the authenticated user of a connection.
type principal struct {
	auth.Identity
	Serial      uint64 // user certificate serial (0 for browser approvals)
	Fingerprint string
	Via         string
}

func identityPerms(id auth.Identity, serial uint64, fp, via string, critical map[string]string) *ssh.Permissions {
	ext := map[string]string{
		permUser: id.User, permIssuer: id.Issuer, permSubject: id.Subject,
		permGroups: strings.Join(id.Groups, ","), permSerial: strconv.FormatUint(serial, 10),
		permFP: fp, permVia: via,
	}
	if !id.MFAAt.IsZero() {
		ext[permMFA] = id.MFAAt.UTC().Format(time.RFC3339)
	}
	return &ssh.Permissions{CriticalOptions: critical, Extensions: ext}
}

func principalFrom(p *ssh.Permissions) (principal, error) {
	if p == nil || p.Extensions[permUser] == "" {
		return principal{}, errors.New("gateway: connection has no authenticated identity")
	}
	e := p.Extensions
	pr := principal{Identity: auth.Identity{User: e[permUser], Issuer: e[permIssuer], Subject: e[permSubject]},
		Fingerprint: e[permFP], Via: e[permVia]}
	if g := e[permGroups]; g != "" {
		pr.Groups = strings.Split(g, ",")
	}
	pr.Serial, _ = strconv.ParseUint(e[permSerial], 10, 64)
	if m := e[permMFA]; m != "" {
		pr.MFAAt, _ = time.Parse(time.RFC3339, m)
	}
	return pr, nil
}

// authConfig returns the ssh.ServerConfig for one connection. hostPrincipals
// name the host certificate presented (the gateway's names, or the target
// name for a ProxyJump inner connection).
func (s *Server) authConfig(ctx context.Context, hostPrincipals []string, inner bool) (*ssh.ServerConfig, error) {
	cfg := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-Gatehouse",
		MaxAuthTries:  6,
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if err := checkUserName(meta.User(), inner); err != nil {
				return nil, &ssh.BannerError{Err: err, Message: "gatehouse: " + err.Error() + "\n"}
			}
			return s.publicKey(meta, key)
		},
		VerifiedPublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, alg string) (*ssh.Permissions, error) {
			perms, err := s.verifiedKey(meta, key, perms, alg)
			if err != nil {
				return nil, err
			}
			return s.maybeSessionMFA(meta, perms, innerTarget(hostPrincipals, inner))
		},
		AuthLogCallback: s.authLog,
	}
	if len(s.cfg.Ciphers) > 0 {
		cfg.Ciphers = s.cfg.Ciphers
	}
	hs, err := s.hostSigner(ctx, hostPrincipals)
	if err != nil {
		return nil, err
	}
	cfg.AddHostKey(s.cfg.Authority.HostKey())
	cfg.AddHostKey(hs)
	return cfg, nil
}

// publicKey accepts Gatehouse user certificates, and plain keys when an
// Approver can complete the login in the browser.
func (s *Server) publicKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
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
		return nil, &ssh.BannerError{Err: err, Message: "gatehouse: " + userMessage(err) + "\n"}
	}
	if err := s.lockError(id.User); err != nil {
		return nil, &ssh.BannerError{Err: err, Message: "gatehouse: " + err.Error() + "\n"}
	}
	return identityPerms(id, cert.Serial, ssh.FingerprintSHA256(cert.Key), "certificate", cert.CriticalOptions), nil
}

// verifiedKey runs once the client proved it holds the key. Plain keys go on
// to the browser approval (keyboard-interactive) unless recently approved.
func (s *Server) verifiedKey(meta ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, _ string) (*ssh.Permissions, error) {
	fp := perms.Extensions[permPlain]
	if fp == "" {
		return perms, nil
	}
	if id, ok := s.cfg.Approver.Reuse(fp); ok {
		if err := s.lockError(id.User); err != nil {
			return nil, &ssh.BannerError{Err: err, Message: "gatehouse: " + err.Error() + "\n"}
		}
		return identityPerms(id, 0, fp, "approval", nil), nil
	}
	return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: func(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			return s.approve(meta, client, fp)
		},
	}}
}

func innerTarget(hostPrincipals []string, inner bool) string {
	if inner && len(hostPrincipals) == 1 {
		return hostPrincipals[0]
	}
	return ""
}

// maybeSessionMFA asks for a fresh TOTP code at the ssh prompt when a role
// that allows this login on this target requires per-session MFA.
func (s *Server) maybeSessionMFA(meta ssh.ConnMetadata, perms *ssh.Permissions, innerTarget string) (*ssh.Permissions, error) {
	if s.cfg.Approver == nil {
		return perms, nil
	}
	login, tname := meta.User(), innerTarget
	if tname == "" {
		a, err := ParseAddress(meta.User())
		if err != nil || !a.Direct() {
			return perms, nil
		}
		login, tname = a.Login, a.Target
	}
	pr, err := principalFrom(perms)
	if err != nil {
		return nil, err
	}
	pt := policy.Target{Name: tname}
	if t, ok := s.targets[tname]; ok {
		pt = policy.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels}
	}
	if !s.cfg.Policy.RequireSessionMFA(pr.User, pr.Groups, pt, login) {
		return perms, nil
	}
	return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: func(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			return s.sessionMFA(client, perms, pr.User, tname)
		},
	}}
}

// sessionMFA prompts for a TOTP code (three tries) and marks the identity
// as freshly verified.
func (s *Server) sessionMFA(client ssh.KeyboardInteractiveChallenge, perms *ssh.Permissions, user, target string) (*ssh.Permissions, error) {
	instr := fmt.Sprintf("Your role requires a fresh TOTP code for every session to %s.", target)
	var lastErr error
	for try := 0; try < 3; try++ {
		ans, err := client("Gatehouse", instr, []string{"TOTP code for " + user + ": "}, []bool{false})
		if err != nil {
			return nil, err
		}
		if len(ans) != 1 {
			return nil, errors.New("gateway: expected one answer")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lastErr = s.cfg.Approver.VerifyTOTP(ctx, user, strings.TrimSpace(ans[0]))
		cancel()
		if lastErr == nil {
			perms.Extensions[permMFA] = s.now().UTC().Format(time.RFC3339)
			return perms, nil
		}
		instr = "That code was not accepted; try the next one."
	}
	return nil, &ssh.BannerError{Err: lastErr, Message: "gatehouse: TOTP code not accepted\n"}
}

// approvalWait bounds how long a plain-ssh login waits for the browser.
const approvalWait = 5 * time.Minute

func (s *Server) approve(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge, fp string) (*ssh.Permissions, error) {
	ctx, cancel := context.WithTimeout(context.Background(), approvalWait)
	defer cancel()
	code, url, wait, err := s.cfg.Approver.Begin(ctx, fp, meta.RemoteAddr().String(), string(meta.ClientVersion()))
	if err != nil {
		return nil, err
	}
	instr := fmt.Sprintf("To log in, open %s\nand check that it shows the code %s. Waiting up to %s...\n", url, code, approvalWait)
	if _, err := client("Gatehouse login", instr, nil, nil); err != nil {
		return nil, err
	}
	id, err := wait(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &ssh.BannerError{Err: err, Message: "gatehouse: login not approved in time; run ssh again\n"}
		}
		return nil, &ssh.BannerError{Err: err, Message: "gatehouse: login was not approved\n"}
	}
	if err := s.lockError(id.User); err != nil {
		return nil, &ssh.BannerError{Err: err, Message: "gatehouse: " + err.Error() + "\n"}
	}
	return identityPerms(id, 0, fp, "approval", nil), nil
}

func (s *Server) authLog(meta ssh.ConnMetadata, method string, err error) {
	if err == nil || method == "none" {
		return
	}
	var pse *ssh.PartialSuccessError
	if errors.As(err, &pse) || errors.Is(err, ssh.ErrNoAuth) || errors.Is(err, auth.ErrNotCertificate) {
		// Plain keys offered before a certificate are routine, not events.
		return
	}
	s.log.Info("ssh auth refused", "remote", meta.RemoteAddr().String(), "user", meta.User(),
		"client", string(meta.ClientVersion()), "method", method, "err", err)
	ev := recorder.Event{Type: recorder.EventAuthFailure, ClientAddr: meta.RemoteAddr().String(),
		ClientVersion: string(meta.ClientVersion()), Reason: err.Error(),
		Details: map[string]any{"ssh_user": meta.User(), "method": method}}
	if aerr := s.cfg.Audit.Append(context.Background(), ev); aerr != nil {
		s.log.Error("audit append failed", "err", aerr)
	}
}

// checkUserName validates the SSH user name before any key is considered, so
// a typo gets a message instead of "Permission denied". The inner connection
// of a ProxyJump carries only the login.
func checkUserName(user string, inner bool) error {
	if inner {
		if !loginRE.MatchString(user) {
			return fmt.Errorf("%q is not a valid login name", user)
		}
		return nil
	}
	_, err := ParseAddress(user)
	return err
}

// userMessage turns an authentication error into the line the user sees.
func userMessage(err error) string {
	if strings.HasPrefix(err.Error(), "your access is locked") {
		return err.Error()
	}
	for _, known := range []error{auth.ErrNotCertificate, auth.ErrForeignCA, auth.ErrNotUserCert,
		auth.ErrCertExpired, auth.ErrCertNotYet, auth.ErrCertPrincipal, auth.ErrCertSource, auth.ErrCertOptions} {
		if errors.Is(err, known) {
			return strings.TrimPrefix(known.Error(), "auth: ")
		}
	}
	return "certificate rejected"
}
