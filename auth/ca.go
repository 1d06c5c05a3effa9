package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/usererr"
)

// Names of the sealed secrets holding the CA and gateway keys.
const (
	secretUserCA    = "ca/user"
	secretSessionCA = "ca/session"
	secretHostCA    = "ca/host"
	secretHostKey   = "gateway/host-key"
)

// Authority holds the three CAs and the gateway's own host key. Each CA is
// trusted by exactly one kind of peer:
//
//   - the user CA signs certificates people hold; only the gateway trusts it;
//   - the session CA signs per-session certificates; only targets trust it
//     (TrustedUserCAKeys), and the gateway never accepts it from a client;
//   - the host CA signs the gateway's host certificates; clients trust it.
//
// It is safe for concurrent use.
type Authority struct {
	userCA    ssh.Signer
	sessionCA ssh.Signer
	hostCA    ssh.Signer
	hostKey   ssh.Signer
	db        *sql.DB

	// sessionCAMigrated reports that this load created the session CA for
	// an install whose user CA already existed (see SessionCAMigrated).
	sessionCAMigrated bool

	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// MaxUserCertTTL is the longest validity span of a user certificate the
	// gateway issues or accepts (certificates.max_user_ttl). Zero means
	// DefaultMaxUserCertTTL.
	MaxUserCertTTL time.Duration

	// rot follows CA key rotations (EnableRotation); nil means the keys
	// never change.
	rot *rotation

	// mu protects hostCerts.
	mu        sync.Mutex
	hostCerts map[string]ssh.Signer // principal list → cert signer
}

// LoadAuthority loads the CA keys from the sealed-secret store, creating them
// on first use. db receives a row for every certificate issued.
//
// An install from before the session CA existed gets one here; targets still
// trusting the user CA then refuse per-session certificates until they are
// moved to `gatehouse ca public --target` (SessionCAMigrated reports it).
func LoadAuthority(ctx context.Context, sec *secrets.Store, db *sql.DB) (*Authority, error) {
	a := &Authority{db: db, hostCerts: map[string]ssh.Signer{}}
	_, err := sec.Get(ctx, secretSessionCA)
	hadSession := err == nil
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return nil, fmt.Errorf("auth: load %s: %w", secretSessionCA, err)
	}
	_, err = sec.Get(ctx, secretUserCA)
	hadUser := err == nil
	for _, k := range []struct {
		name string
		dst  *ssh.Signer
	}{{secretUserCA, &a.userCA}, {secretSessionCA, &a.sessionCA}, {secretHostCA, &a.hostCA}, {secretHostKey, &a.hostKey}} {
		s, err := loadKey(ctx, sec, k.name)
		if err != nil {
			return nil, err
		}
		*k.dst = s
	}
	a.sessionCAMigrated = hadUser && !hadSession
	return a, nil
}

// ErrCASignersMissing is returned by LoadAuthorityWithSigners when a CA has
// no signer: it never falls back to a key sealed in the database.
var ErrCASignersMissing = errors.New("auth: a CA key held outside the database is missing")

// LoadAuthorityWithSigners loads an Authority whose three CA keys are held
// outside the database (a PKCS#11 token): s must set all three. Only the
// gateway's own host key is read (or created) from the sealed-secret store;
// no sealed CA key is read, created or used, so nothing signs with a
// software CA key. sessionCAMigrated is the caller's finding (the token's
// session key was created for an install whose user key existed).
func LoadAuthorityWithSigners(ctx context.Context, sec *secrets.Store, db *sql.DB, s CASigners, sessionCAMigrated bool) (*Authority, error) {
	if s.User == nil || s.Session == nil || s.Host == nil {
		return nil, ErrCASignersMissing
	}
	hostKey, err := loadKey(ctx, sec, secretHostKey)
	if err != nil {
		return nil, err
	}
	return &Authority{db: db, hostCerts: map[string]ssh.Signer{}, userCA: s.User, sessionCA: s.Session, hostCA: s.Host,
		hostKey: hostKey, sessionCAMigrated: sessionCAMigrated}, nil
}

// SealedCAKeys lists the CA keys sealed in sec's store under the names
// LoadAuthority uses ("ca/user", "ca/session", "ca/host"): with CA keys on
// a token, those left by an earlier software-key install (they sign
// nothing there, but targets may still trust them).
func SealedCAKeys(ctx context.Context, sec *secrets.Store) ([]string, error) {
	var out []string
	for _, name := range []string{secretUserCA, secretSessionCA, secretHostCA} {
		_, err := sec.Get(ctx, name)
		switch {
		case err == nil:
			out = append(out, name)
		case !errors.Is(err, secrets.ErrNotFound):
			return nil, fmt.Errorf("auth: load %s: %w", name, err)
		}
	}
	return out, nil
}

// loadKey opens the sealed Ed25519 seed name, creating it when absent.
func loadKey(ctx context.Context, sec *secrets.Store, name string) (ssh.Signer, error) {
	seed, err := sec.GetOrCreate(ctx, name, newEd25519Seed)
	if err != nil {
		return nil, fmt.Errorf("auth: load %s: %w", name, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("auth: %s: stored key has wrong size", name)
	}
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", name, err)
	}
	return s, nil
}

// SessionCAMigrationNotice is the operator's line when an existing install
// gets its session CA.
const SessionCAMigrationNotice = "a new session CA was created: per-session certificates are now signed by it, and targets that still trust the user CA will refuse them; " +
	"set each target's TrustedUserCAKeys to the output of 'gatehouse ca public --target' (and remove the user CA from it: it lets a person's certificate log in directly)"

// SessionCAMigrated reports whether this load created the session CA for an
// existing install (one whose user CA already existed). Its targets still
// trust the user CA and must be given `gatehouse ca public --target` as
// TrustedUserCAKeys; callers tell the operator so.
func (a *Authority) SessionCAMigrated() bool { return a.sessionCAMigrated }

func newEd25519Seed() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return priv.Seed(), nil
}

func (a *Authority) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// UserCAPublicKey is the CA of the certificates people hold. Only the
// gateway trusts it; targets must not.
func (a *Authority) UserCAPublicKey() ssh.PublicKey { return a.userCA.PublicKey() }

// SessionCAPublicKey is the key targets trust with TrustedUserCAKeys: it
// signs per-session certificates only.
func (a *Authority) SessionCAPublicKey() ssh.PublicKey { return a.sessionCA.PublicKey() }

// HostCAPublicKey is the key clients trust with @cert-authority.
func (a *Authority) HostCAPublicKey() ssh.PublicKey { return a.hostCA.PublicKey() }

// UserCASigner signs certificates; exposed for tests and the admin CLI only.
func (a *Authority) UserCASigner() ssh.Signer { return a.userCA }

// HostKey is the gateway's own host key (without certificate).
func (a *Authority) HostKey() ssh.Signer { return a.hostKey }

// UserCertRequest asks for a user certificate.
type UserCertRequest struct {
	Identity  Identity
	PublicKey ssh.PublicKey
	TTL       time.Duration
	// Now is the issue time; zero means the Authority's clock.
	Now time.Time
}

// MaxSessionCertTTL caps per-session certificates: they only have to outlive
// the target's authentication.
const MaxSessionCertTTL = 15 * time.Minute

// DefaultMaxUserCertTTL is the default certificates.max_user_ttl.
const DefaultMaxUserCertTTL = 24 * time.Hour

func (a *Authority) maxUserTTL() time.Duration {
	if a.MaxUserCertTTL > 0 {
		return a.MaxUserCertTTL
	}
	return DefaultMaxUserCertTTL
}

// clockSkew backdates certificates so a client whose clock is slightly behind
// can use them at once.
const clockSkew = time.Minute

// IssueUserCert signs a user certificate for req.Identity: one principal (the
// user), KeyId "gatehouse:<user>", standard permit-* extensions (the gateway
// enforces the real policy) and the identity extensions. Its serial is stored.
func (a *Authority) IssueUserCert(ctx context.Context, req UserCertRequest) (*ssh.Certificate, error) {
	id := req.Identity
	if !ValidUserName(id.User) {
		return nil, ErrBadUserName
	}
	if req.PublicKey == nil {
		return nil, errors.New("auth: no public key to certify")
	}
	if _, isCert := req.PublicKey.(*ssh.Certificate); isCert {
		return nil, errors.New("auth: cannot certify a certificate; send the plain public key")
	}
	if req.TTL <= 0 {
		return nil, errors.New("auth: certificate TTL must be positive")
	}
	if req.TTL > a.maxUserTTL() {
		return nil, fmt.Errorf("auth: certificate TTL %s is longer than certificates.max_user_ttl %s", req.TTL, a.maxUserTTL())
	}
	now := req.Now
	if now.IsZero() {
		now = a.now()
	}
	ext := map[string]string{
		"permit-pty": "", "permit-port-forwarding": "", "permit-agent-forwarding": "",
		"permit-X11-forwarding": "", "permit-user-rc": "",
	}
	if len(id.Groups) > 0 {
		ext[ExtGroups] = strings.Join(id.Groups, ",")
	}
	if id.Issuer != "" {
		ext[ExtIssuer], ext[ExtSubject] = id.Issuer, id.Subject
	}
	if !id.MFAAt.IsZero() {
		ext[ExtMFAAt] = id.MFAAt.UTC().Format(time.RFC3339)
	}
	cert := &ssh.Certificate{
		Key:             req.PublicKey,
		CertType:        ssh.UserCert,
		KeyId:           KeyIDPrefix + id.User,
		ValidPrincipals: []string{id.User},
		ValidAfter:      uint64(now.Add(-clockSkew).Unix()),
		ValidBefore:     uint64(now.Add(req.TTL).Unix()),
		Permissions:     ssh.Permissions{Extensions: ext},
	}
	if err := a.sign(ctx, cert, a.userCA, "user", id.User, ""); err != nil {
		return nil, err
	}
	return cert, nil
}

// SessionCertRequest asks for a per-session certificate for a target.
type SessionCertRequest struct {
	User      string // Gatehouse user (named in KeyId)
	SessionID string
	Login     string // the one principal
	// SourceAddress is the gateway's local IP on the connection to the target.
	SourceAddress string
	TTL           time.Duration
	PTY           bool
	PortForward   bool
	AgentForward  bool
	// ForceCommand, when set, becomes the force-command critical option:
	// the target's sshd runs this command and nothing else.
	ForceCommand string
}

// SessionCert is a freshly minted per-session credential.
type SessionCert struct {
	Signer ssh.Signer // ephemeral key with the certificate attached
	Cert   *ssh.Certificate
}

// MintSessionCert generates an ephemeral Ed25519 key and signs, with the
// session CA, a certificate valid for req.TTL with exactly one principal (the
// login), KeyId naming user and session, and source-address pinned to the
// gateway.
func (a *Authority) MintSessionCert(ctx context.Context, req SessionCertRequest) (*SessionCert, error) {
	if req.Login == "" || req.SourceAddress == "" {
		return nil, errors.New("auth: session certificate needs a login and a source address")
	}
	if req.TTL <= 0 || req.TTL > MaxSessionCertTTL {
		return nil, fmt.Errorf("auth: session certificate TTL %s: want more than 0 and at most %s", req.TTL, MaxSessionCertTTL)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	ext := map[string]string{}
	if req.PTY {
		ext["permit-pty"] = ""
	}
	if req.PortForward {
		ext["permit-port-forwarding"] = ""
	}
	if req.AgentForward {
		ext["permit-agent-forwarding"] = ""
	}
	critical := map[string]string{"source-address": req.SourceAddress}
	if req.ForceCommand != "" {
		critical["force-command"] = req.ForceCommand
	}
	now := a.now()
	cert := &ssh.Certificate{
		Key:             key.PublicKey(),
		CertType:        ssh.UserCert,
		KeyId:           fmt.Sprintf("gatehouse:%s session:%s", req.User, req.SessionID),
		ValidPrincipals: []string{req.Login},
		ValidAfter:      uint64(now.Add(-clockSkew).Unix()),
		ValidBefore:     uint64(now.Add(req.TTL).Unix()),
		Permissions: ssh.Permissions{
			CriticalOptions: critical,
			Extensions:      ext,
		},
	}
	if err := a.sign(ctx, cert, a.sessionCA, "session", req.User, req.SessionID); err != nil {
		return nil, err
	}
	cs, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, err
	}
	return &SessionCert{Signer: cs, Cert: cert}, nil
}

// HostCertSigner returns the gateway host key with a host certificate for
// principals, signed by the host CA. Certificates are cached per principal
// set and renewed when less than a day of validity remains.
func (a *Authority) HostCertSigner(ctx context.Context, principals []string) (ssh.Signer, error) {
	ps := append([]string(nil), principals...)
	sort.Strings(ps)
	key := strings.Join(ps, ",")
	now := a.now()
	a.mu.Lock()
	s, ok := a.hostCerts[key]
	a.mu.Unlock()
	if ok {
		if c := s.PublicKey().(*ssh.Certificate); time.Unix(int64(c.ValidBefore), 0).Sub(now) > 24*time.Hour {
			return s, nil
		}
	}
	cert := &ssh.Certificate{
		Key:             a.hostKey.PublicKey(),
		CertType:        ssh.HostCert,
		KeyId:           "gatehouse-host:" + key,
		ValidPrincipals: ps,
		ValidAfter:      uint64(now.Add(-clockSkew).Unix()),
		ValidBefore:     uint64(now.Add(7 * 24 * time.Hour).Unix()),
	}
	if err := a.sign(ctx, cert, a.hostCA, "host", "", ""); err != nil {
		return nil, err
	}
	s, err := ssh.NewCertSigner(cert, a.hostKey)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.hostCerts[key] = s
	a.mu.Unlock()
	return s, nil
}

// sign sets a random serial and nonce, signs cert and records it.
func (a *Authority) sign(ctx context.Context, cert *ssh.Certificate, ca ssh.Signer, kind, user, session string) error {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	// Keep serials positive as int64 so they round-trip through SQLite.
	cert.Serial = binary.BigEndian.Uint64(b[:]) >> 1
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return fmt.Errorf("auth: sign %s certificate: %w", kind, err)
	}
	if a.db == nil {
		return nil
	}
	_, err := a.db.ExecContext(ctx, `INSERT INTO certificates(serial, kind, key_id, principals, user_name, session_id,
		key_fingerprint, valid_after, valid_before, issued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(cert.Serial), kind, cert.KeyId, strings.Join(cert.ValidPrincipals, ","), user, session,
		ssh.FingerprintSHA256(cert.Key), int64(cert.ValidAfter), int64(cert.ValidBefore), a.now().Unix())
	if err != nil {
		return fmt.Errorf("auth: record %s certificate: %w", kind, err)
	}
	return nil
}

// Certificate check failures, distinguished so the gateway can tell users
// what to do.
var (
	ErrNotCertificate = usererr.New("auth", "a Gatehouse certificate is required (run 'gatehouse login')")
	ErrForeignCA      = usererr.New("auth", "certificate is not signed by this gateway's user CA")
	ErrNotUserCert    = usererr.New("auth", "certificate is a host certificate, not a user certificate")
	ErrCertExpired    = usererr.New("auth", "certificate has expired (run 'gatehouse login')")
	ErrCertNotYet     = usererr.New("auth", "certificate is not valid yet (check the clock)")
	ErrCertPrincipal  = usererr.New("auth", "certificate does not name exactly one valid Gatehouse user")
	ErrCertSource     = usererr.New("auth", "certificate may not be used from this address")
	ErrCertOptions    = usererr.New("auth", "certificate carries unsupported critical options")
	ErrCertNoExpiry   = usererr.New("auth", "certificate never expires; this gateway accepts only short-lived certificates (run 'gatehouse login' for a new one)")
	ErrCertTooLong    = usererr.New("auth", "certificate is valid for longer than this gateway allows (run 'gatehouse login' for a new one)")
)

// CheckUserCert verifies that key is a valid user certificate from this
// gateway's user CA, usable from remote now, and returns the identity it names.
func (a *Authority) CheckUserCert(key ssh.PublicKey, remote net.Addr) (Identity, *ssh.Certificate, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return Identity{}, nil, ErrNotCertificate
	}
	if cert.CertType != ssh.UserCert {
		return Identity{}, nil, ErrNotUserCert
	}
	if bytes.Equal(cert.SignatureKey.Marshal(), a.sessionCA.PublicKey().Marshal()) {
		// A per-session certificate leaked from a target is not a
		// person's credential.
		return Identity{}, nil, fmt.Errorf("%w (a per-session certificate, signed by the session CA)", ErrForeignCA)
	}
	if !a.isUserCA(cert.SignatureKey) {
		return Identity{}, nil, ErrForeignCA
	}
	if len(cert.ValidPrincipals) != 1 || !ValidUserName(cert.ValidPrincipals[0]) {
		return Identity{}, nil, ErrCertPrincipal
	}
	now := a.now()
	if after := time.Unix(int64(cert.ValidAfter), 0); now.Before(after) {
		return Identity{}, nil, ErrCertNotYet
	}
	if err := a.checkValiditySpan(cert); err != nil {
		return Identity{}, nil, err
	}
	if !now.Before(time.Unix(int64(cert.ValidBefore), 0)) {
		return Identity{}, nil, ErrCertExpired
	}
	// Critical options are judged here, by name, so the refusal is ours
	// and not read back out of CertChecker's error text.
	for opt := range cert.CriticalOptions {
		if opt != "source-address" {
			return Identity{}, nil, fmt.Errorf("%w [%q]", ErrCertOptions, opt)
		}
	}
	checker := &ssh.CertChecker{
		SupportedCriticalOptions: []string{"source-address"},
		IsUserAuthority:          a.isUserCA,
		Clock:                    a.now,
	}
	// CheckCert against the identity the certificate names, not the SSH
	// user name (which carries login@target).
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return Identity{}, nil, usererr.Wrap(err, "auth", "certificate rejected")
	}
	if err := checkSourceAddress(remote, cert.CriticalOptions["source-address"]); err != nil {
		return Identity{}, nil, err
	}
	id, err := IdentityFromCert(cert)
	return id, cert, err
}

// checkValiditySpan refuses a certificate without an expiry, or valid for
// longer than MaxUserCertTTL (plus the back-dating IssueUserCert applies).
// The detail (span, maximum) is for the operator's log.
func (a *Authority) checkValiditySpan(cert *ssh.Certificate) error {
	if cert.ValidBefore == ssh.CertTimeInfinity || cert.ValidBefore > math.MaxInt64 {
		return fmt.Errorf("%w [serial %d, KeyId %q: valid_before is infinity]", ErrCertNoExpiry, cert.Serial, cert.KeyId)
	}
	if cert.ValidBefore <= cert.ValidAfter {
		return fmt.Errorf("%w [serial %d: empty validity]", ErrCertExpired, cert.Serial)
	}
	secs := cert.ValidBefore - cert.ValidAfter
	if secs > uint64((a.maxUserTTL()+clockSkew)/time.Second) {
		span := time.Duration(min(secs, uint64(math.MaxInt64/int64(time.Second)))) * time.Second
		return fmt.Errorf("%w [serial %d, KeyId %q: valid for %s, certificates.max_user_ttl is %s]",
			ErrCertTooLong, cert.Serial, cert.KeyId, span, a.maxUserTTL())
	}
	return nil
}

func checkSourceAddress(remote net.Addr, list string) error {
	if list == "" {
		return nil
	}
	tcp, ok := remote.(*net.TCPAddr)
	if !ok {
		return ErrCertSource
	}
	for _, s := range strings.Split(list, ",") {
		if _, n, err := net.ParseCIDR(s); err == nil && n.Contains(tcp.IP) {
			return nil
		}
		if ip := net.ParseIP(s); ip != nil && ip.Equal(tcp.IP) {
			return nil
		}
	}
	return ErrCertSource
}
