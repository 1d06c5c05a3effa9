// Package config loads and validates the one YAML file that configures Gatehouse.
//
// Every field documents what its zero value means; a zero value never grants
// access. Unknown keys, bad values and missing files are reported as one line
// naming the file, the line and the key, so an operator can fix them without
// reading code. docs/config.md is the reference for every key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPath is used when neither --config nor GATEHOUSE_CONFIG is given.
const DefaultPath = "gatehouse.yaml"

// Config is the whole configuration file.
type Config struct {
	// DataDir holds the SQLite database, recordings and the master key
	// (created 0700). Empty means "/var/lib/gatehouse".
	DataDir string `yaml:"data_dir"`
	// MasterKeyFile holds the 32-byte key that encrypts secrets and
	// recordings at rest. Empty means DataDir/master.key, created 0600 on first
	// start. The GATEHOUSE_MASTER_KEY environment variable (base64) wins over both.
	MasterKeyFile string `yaml:"master_key_file"`
	// WatchConfig is how often `gatehouse serve` checks the configuration
	// file's modification time and reloads roles, bindings and targets
	// when it changed. Zero: only on SIGHUP.
	WatchConfig time.Duration `yaml:"watch_config"`

	// Database chooses the engine: empty or sqlite:PATH keeps the SQLite
	// file in DataDir; postgres://... uses PostgreSQL (several instances may
	// share it).
	Database Database `yaml:"database"`

	SSH       SSH       `yaml:"ssh"`
	Web       Web       `yaml:"web"`
	OIDC      OIDC      `yaml:"oidc"`
	TOTP      TOTP      `yaml:"totp"`
	Certs     Certs     `yaml:"certificates"`
	Recording Recording `yaml:"recording"`
	Audit     Audit     `yaml:"audit"`
	Metrics   Metrics   `yaml:"metrics"`
	CA        CA        `yaml:"ca"`
	Alerts    []Alert   `yaml:"alerts"`
	Retention Retention `yaml:"retention"`
	Targets   []Target  `yaml:"targets"`
	Roles     []Role    `yaml:"roles"`
	Bindings  []Binding `yaml:"bindings"`

	// path is the file this was loaded from, for messages.
	path string
	// root is the parsed document, to find the line of a key.
	root *yaml.Node
}

// SSH configures the SSH front door.
type SSH struct {
	// Listen is the address of the SSH listener. Empty means "0.0.0.0:2222".
	Listen string `yaml:"listen"`
	// HandshakeTimeout bounds the time from TCP accept to authenticated
	// connection. Zero means 30s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// MaxUnauthenticatedPerIP bounds concurrent not-yet-authenticated
	// connections from one IP. Zero means 10.
	MaxUnauthenticatedPerIP int `yaml:"max_unauthenticated_per_ip"`
	// MaxUnauthenticated bounds concurrent not-yet-authenticated
	// connections in total; past it new connections are closed at once.
	// Zero means 500.
	MaxUnauthenticated int `yaml:"max_unauthenticated"`
	// TargetDialTimeout bounds connecting to a target. Zero means 10s.
	TargetDialTimeout time.Duration `yaml:"target_dial_timeout"`
	// ShutdownGrace is how long SIGTERM waits for live sessions before
	// closing them. Zero means 10s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// Ciphers, KeyExchanges, MACs and HostKeyTypes are the SSH algorithms
	// (x/crypto names, in preference order) of both legs: clients to the
	// gateway, the gateway to targets, and the ProxyJump inner server. Empty
	// means DefaultCiphers, DefaultKeyExchanges, DefaultMACs and
	// DefaultHostKeyTypes; unknown or weak names are a configuration error.
	Ciphers      []string `yaml:"ciphers"`
	KeyExchanges []string `yaml:"kex"`
	MACs         []string `yaml:"macs"`
	HostKeyTypes []string `yaml:"host_key_types"`
	// LoginPattern is the regular expression (anchored) every target login
	// must match; others are refused before policy runs. Empty means
	// DefaultLoginPattern (lower case only).
	LoginPattern string `yaml:"login_pattern"`

	loginRE *regexp.Regexp // compiled LoginPattern
}

// Web configures the HTTPS front door.
type Web struct {
	// Listen is the address of the web listener. Empty means "0.0.0.0:8443".
	Listen string `yaml:"listen"`
	// PublicURL is the URL users reach the web UI at. Empty means
	// "https://<listen>".
	PublicURL string `yaml:"public_url"`
	// TLSCertFile and TLSKeyFile are a PEM certificate and key. Empty means a
	// self-signed certificate generated on first start (fingerprint printed).
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// InsecureHTTP serves plain HTTP instead of HTTPS. Zero (false) means HTTPS.
	// Only for a gateway behind a TLS-terminating proxy on loopback.
	InsecureHTTP bool `yaml:"insecure_http"`
}

// OIDC configures the company identity provider. An empty Issuer disables
// OIDC login (then only admin-issued certificates work).
type OIDC struct {
	Issuer string `yaml:"issuer"`
	// ClientID is the client registered at the IdP for Gatehouse.
	ClientID string `yaml:"client_id"`
	// ClientSecretFile holds the client secret. Empty means a public client
	// (PKCE only).
	ClientSecretFile string `yaml:"client_secret_file"`
	// GroupsClaim is the ID-token claim holding group names. Empty means "groups".
	GroupsClaim string `yaml:"groups_claim"`
	// UsernameClaim names the claim used as the Gatehouse user name. Empty
	// means "preferred_username", falling back to the subject.
	UsernameClaim string `yaml:"username_claim"`
	// Scopes requested besides "openid". Empty means ["profile", "email"].
	Scopes []string `yaml:"scopes"`
	// MaxClockSkew bounds accepted token clock skew. Zero means 1m.
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// AllowedRedirects lists URL prefixes a login may return to besides the
	// web UI itself and loopback CLI redirects. Empty means none.
	AllowedRedirects []string `yaml:"allowed_redirects"`
}

// TOTP configures the second factor.
type TOTP struct {
	// Issuer is the name shown in authenticator apps. Empty means "Gatehouse".
	Issuer string `yaml:"issuer"`
	// MaxAttempts failed codes in a row lock the user's TOTP. Zero means 5.
	MaxAttempts int `yaml:"max_attempts"`
	// Lockout is how long a lockout lasts. Zero means 15m.
	Lockout time.Duration `yaml:"lockout"`
}

// Certs configures the certificates Gatehouse issues.
type Certs struct {
	// UserTTL is the default user certificate lifetime. Zero means 8h.
	UserTTL time.Duration `yaml:"user_ttl"`
	// MaxUserTTL caps any user certificate lifetime. Zero means 24h.
	MaxUserTTL time.Duration `yaml:"max_user_ttl"`
	// SessionTTL is the lifetime of per-session certificates presented to
	// targets. Zero means 2m.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// ApprovalWindow is how long a browser approval of a plain-ssh login is
	// reused for the same client key, source IP and login@target. Zero
	// means 10m.
	ApprovalWindow time.Duration `yaml:"approval_window"`
	// MaxPendingApprovalsPerIP bounds the plain-ssh logins waiting for a
	// browser approval from one source (IPv4 address or IPv6 /64). Zero
	// means 10.
	MaxPendingApprovalsPerIP int `yaml:"max_pending_approvals_per_ip"`
	// MaxPendingApprovals bounds those logins in total. Zero means 1000.
	MaxPendingApprovals int `yaml:"max_pending_approvals"`
}

// Recording configures session recordings.
type Recording struct {
	// Dir holds recordings. Empty means DataDir/recordings.
	Dir string `yaml:"dir"`
	// MaxSessionBytes ends a session whose recording grows past this size.
	// Zero means 1 GiB; -1 means unlimited.
	MaxSessionBytes int64 `yaml:"max_session_bytes"`
	// StreamFullBytes: in a session without a terminal, once a stream
	// (stdout, stderr, stdin) passes this size the recording keeps its
	// SHA-256, length and timing but stops storing its bytes; the session
	// goes on. Zero means 64 MiB; negative stores every byte (then
	// max_session_bytes ends large transfers).
	StreamFullBytes int64 `yaml:"stream_full_bytes"`
	// FailOpen lets sessions continue when recording fails. Zero (false)
	// means fail closed: the session is refused or ended.
	FailOpen bool `yaml:"fail_open"`
	// S3, if its bucket is set, stores new recordings in an S3-compatible
	// bucket instead of Dir. Empty keeps the local directory.
	S3 RecordingS3 `yaml:"s3"`
}

// RecordingS3 puts recordings in an S3-compatible bucket. Credentials come
// from the standard AWS chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// shared files, instance role), never from this file.
type RecordingS3 struct {
	// Endpoint of an S3-compatible server (https://minio.example:9000);
	// empty means AWS. When set, requests use path-style addressing.
	Endpoint string `yaml:"endpoint"`
	// Bucket holds the recordings; empty means the local directory.
	Bucket string `yaml:"bucket"`
	// Prefix is prepended to every object key, e.g. "recordings/".
	Prefix string `yaml:"prefix"`
	// Region of the bucket; empty means us-east-1.
	Region string `yaml:"region"`
	// ObjectLockDays, when > 0, writes every object under object lock
	// retention (COMPLIANCE mode) for that many days; the bucket must have
	// been created with object lock enabled.
	ObjectLockDays int `yaml:"object_lock_days"`
}

// Enabled reports whether recordings go to object storage.
func (s RecordingS3) Enabled() bool { return s.Bucket != "" }

// Audit configures the audit log.
type Audit struct {
	// CheckpointInterval is how often a signed checkpoint is written. Zero
	// means 5m.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// CheckpointFile, if set, receives a copy of every checkpoint (append).
	CheckpointFile string `yaml:"checkpoint_file"`
	// CheckpointURL, if set, receives every checkpoint by HTTP POST.
	CheckpointURL string `yaml:"checkpoint_url"`
	// Stream sends every event as a JSON line to "stdout", "syslog" or
	// "file:/path". Empty means no stream.
	Stream string `yaml:"stream"`
}

// Metrics configures the operations listener: Prometheus /metrics and the
// /healthz and /readyz probes, on an address of its own (never the web UI's).
type Metrics struct {
	// Listen is the address of the operations listener. Empty means off.
	// It is plain HTTP and unauthenticated: bind it to loopback or a
	// monitoring network.
	Listen string `yaml:"listen"`
}

// Target is one host or container users may reach.
type Target struct {
	// Name is how users address the target (login@name@gateway). Required.
	Name string `yaml:"name"`
	// Kind is "ssh" or "docker". Empty means "ssh".
	Kind string `yaml:"kind"`
	// Address is host:port of the target's sshd (kind ssh). Required for ssh.
	Address string `yaml:"address"`
	// HostKey pins the target's host key ("ssh-ed25519 AAAA...").
	HostKey string `yaml:"host_key"`
	// HostCA trusts host certificates signed by this CA key. One of HostKey
	// or HostCA is required for ssh targets: unknown keys are refused.
	HostCA string `yaml:"host_ca"`
	// Labels are matched by role selectors.
	Labels map[string]string `yaml:"labels"`
	// DockerHost is the Docker Engine endpoint (kind docker), e.g.
	// "unix:///var/run/docker.sock". Empty means the client default.
	DockerHost string `yaml:"docker_host"`
	// DockerTLS configures mutual TLS to a TCP Docker endpoint.
	DockerTLS DockerTLS `yaml:"docker_tls"`
	// Container is the container name or id (kind docker, named target).
	// Empty on a docker target means the target is a Docker host whose
	// containers are addressed as docker:<container>.
	Container string `yaml:"container"`
	// Shell is the shell started for interactive sessions in containers.
	// Empty means /bin/bash, falling back to /bin/sh.
	Shell string `yaml:"shell"`
}

// DockerTLS holds PEM file paths for mutual TLS to a Docker Engine.
type DockerTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Role grants access; Deny always wins over Allow.
type Role struct {
	Name  string `yaml:"name"`
	Allow Rules  `yaml:"allow"`
	Deny  Rules  `yaml:"deny"`
	// Warn uses only Commands (narrowed by Targets and Logins when set):
	// matching exec requests run and are audited as command.warn.
	Warn    Rules       `yaml:"warn"`
	Options RoleOptions `yaml:"options"`
}

// Rules select targets and logins. An empty Rules matches nothing.
type Rules struct {
	Targets Selector `yaml:"targets"`
	// Logins are the target accounts. Empty matches no login. "*" matches any.
	Logins []string `yaml:"logins"`
	// ContainerLabels select containers by their Docker labels.
	ContainerLabels map[string]string `yaml:"container_labels"`
	// Commands: under allow, the only exec commands the role allows (matched
	// on the parsed argument list; see docs/policy.md); under deny and warn,
	// patterns checked against every command in an exec request. Empty means
	// no restriction from this rule.
	Commands []string `yaml:"commands"`
}

// Selector matches targets by name glob or by labels (all must match).
// An empty Selector matches nothing.
type Selector struct {
	Names  []string          `yaml:"names"`
	Labels map[string]string `yaml:"labels"`
}

// RoleOptions are the permissions a role grants beyond reaching a target.
// Every zero value denies; when a user has several roles, each option is
// granted if any matching role grants it, and limits take the smallest.
type RoleOptions struct {
	// PortForwarding allows local port forwarding (ssh -L). Zero denies.
	PortForwarding bool `yaml:"port_forwarding"`
	// SFTP allows the sftp subsystem (scp, sftp, rsync use it). Zero denies.
	SFTP bool `yaml:"sftp"`
	// AgentForwarding allows ssh -A. Zero denies.
	AgentForwarding bool `yaml:"agent_forwarding"`
	// MaxSessionTTL ends sessions after this long. Zero means no limit.
	MaxSessionTTL time.Duration `yaml:"max_session_ttl"`
	// IdleTimeout ends sessions with no input or output for this long.
	// Zero means no idle limit.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// CertTTL caps user certificates of users holding the role. Zero means
	// the certificates.user_ttl default.
	CertTTL time.Duration `yaml:"cert_ttl"`
	// RequireSessionMFA asks a fresh TOTP code for each session. Zero means no.
	RequireSessionMFA bool `yaml:"require_session_mfa"`
	// ViewInput lets the role read recorded keystrokes. Zero denies.
	ViewInput bool `yaml:"view_input"`
	// Permissions are web UI permissions: "admin", "auditor". Users always
	// see their own sessions. Empty grants nothing more.
	Permissions []string `yaml:"permissions"`
	// Requestable lets any signed-in user ask for this role for a while
	// (just-in-time access, docs/policy.md); the grant takes effect once
	// approved. Zero: the role is only held through bindings.
	Requestable bool `yaml:"requestable"`
	// MaxSessions caps the sessions a user holding this role has open at
	// once through this gateway, all targets together. Of the user's roles
	// the smallest non-zero value applies. Zero: no cap from this role.
	MaxSessions int `yaml:"max_sessions"`
	// ApprovalsRequired is how many different reviewers must approve a
	// request for this role. Zero means 1.
	ApprovalsRequired int `yaml:"approvals_required"`
	// MaxRequestTTL caps how long a request for this role may ask for.
	// Zero means 8h.
	MaxRequestTTL time.Duration `yaml:"max_request_ttl"`
	// ReviewRequests names the roles whose access requests holders of this
	// role (through a binding, never through a grant) may approve or deny.
	ReviewRequests []string `yaml:"review_requests"`
}

// Binding maps a user or an OIDC group to roles. Exactly one of User, Group.
type Binding struct {
	User  string   `yaml:"user"`
	Group string   `yaml:"group"`
	Roles []string `yaml:"roles"`
}

// Error is a configuration problem located in the file.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("config: %s: %s: %s", loc, e.Key, e.Msg)
	}
	return fmt.Sprintf("config: %s: %s", loc, e.Msg)
}

// PathFromEnv returns flagValue, or GATEHOUSE_CONFIG, or DefaultPath.
func PathFromEnv(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("GATEHOUSE_CONFIG"); p != "" {
		return p
	}
	return DefaultPath
}

// Load reads, parses and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config: %s: file not found (pass --config FILE or set GATEHOUSE_CONFIG)", path)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if c.DataDir != "" && !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(filepath.Dir(path), c.DataDir)
	}
	return c, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse parses and validates YAML content; name is used in messages.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{path: name}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	c.root = &root
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{File: name, Msg: "file is empty"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, yamlError(name, err)
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func yamlError(name string, err error) error {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		detail := m[2]
		detail = strings.Replace(detail, "not found in type", "is not a known key in", 1)
		detail = regexp.MustCompile(`config\.(\w+)`).ReplaceAllString(detail, "$1")
		return &Error{File: name, Line: line, Msg: detail}
	}
	return &Error{File: name, Msg: msg}
}

// Path returns the file the configuration was loaded from.
func (c *Config) Path() string { return c.path }

func (c *Config) applyDefaults() {
	if c.DataDir == "" {
		c.DataDir = "/var/lib/gatehouse"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.SSH.Listen == "" {
		c.SSH.Listen = "0.0.0.0:2222"
	}
	def(&c.SSH.HandshakeTimeout, 30*time.Second)
	def(&c.SSH.TargetDialTimeout, 10*time.Second)
	def(&c.SSH.ShutdownGrace, 10*time.Second)
	def(&c.Database.InstanceLease, 15*time.Second)
	if c.SSH.MaxUnauthenticatedPerIP == 0 {
		c.SSH.MaxUnauthenticatedPerIP = 10
	}
	c.SSH.applyAlgorithmDefaults()
	if c.SSH.MaxUnauthenticated == 0 {
		c.SSH.MaxUnauthenticated = 500
	}
	if c.Web.Listen == "" {
		c.Web.Listen = "0.0.0.0:8443"
	}
	if c.Web.PublicURL == "" {
		scheme := "https"
		if c.Web.InsecureHTTP {
			scheme = "http"
		}
		c.Web.PublicURL = scheme + "://" + c.Web.Listen
	}
	if c.OIDC.GroupsClaim == "" {
		c.OIDC.GroupsClaim = "groups"
	}
	if c.OIDC.UsernameClaim == "" {
		c.OIDC.UsernameClaim = "preferred_username"
	}
	if len(c.OIDC.Scopes) == 0 {
		c.OIDC.Scopes = []string{"profile", "email"}
	}
	def(&c.OIDC.MaxClockSkew, time.Minute)
	if c.TOTP.Issuer == "" {
		c.TOTP.Issuer = "Gatehouse"
	}
	if c.TOTP.MaxAttempts == 0 {
		c.TOTP.MaxAttempts = 5
	}
	def(&c.TOTP.Lockout, 15*time.Minute)
	def(&c.Certs.UserTTL, 8*time.Hour)
	def(&c.Certs.MaxUserTTL, 24*time.Hour)
	def(&c.Certs.SessionTTL, 2*time.Minute)
	def(&c.Certs.ApprovalWindow, 10*time.Minute)
	if c.Recording.Dir == "" {
		c.Recording.Dir = filepath.Join(c.DataDir, "recordings")
	}
	if c.Recording.StreamFullBytes == 0 {
		c.Recording.StreamFullBytes = 64 << 20
	}
	if c.Recording.MaxSessionBytes == 0 {
		c.Recording.MaxSessionBytes = 1 << 30
	}
	def(&c.Audit.CheckpointInterval, 5*time.Minute)
	if c.MasterKeyFile == "" {
		c.MasterKeyFile = filepath.Join(c.DataDir, "master.key")
	}
	for i := range c.Targets {
		if c.Targets[i].Kind == "" {
			c.Targets[i].Kind = "ssh"
		}
	}
}

// targetNameRE is the grammar of target and role names: it must not contain
// '@' (the username separator) nor ':' (the docker: prefix).
var targetNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func (c *Config) fail(key, format string, args ...any) error {
	return &Error{File: c.path, Line: c.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, l := range []struct{ key, addr string }{{"ssh.listen", c.SSH.Listen}, {"web.listen", c.Web.Listen}} {
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			add(c.fail(l.key, "%q is not host:port", l.addr))
		}
	}
	if c.SSH.HandshakeTimeout < 0 || c.SSH.TargetDialTimeout < 0 || c.SSH.MaxUnauthenticatedPerIP < 0 || c.SSH.MaxUnauthenticated < 0 {
		add(c.fail("ssh", "timeouts and limits must not be negative"))
	}
	if c.Database.InstanceLease < time.Second {
		add(c.fail("database.instance_lease", "%s is too short: at least 1s", c.Database.InstanceLease))
	}
	if c.Certs.MaxPendingApprovalsPerIP < 0 || c.Certs.MaxPendingApprovals < 0 {
		add(c.fail("certificates", "max_pending_approvals limits must not be negative"))
	}
	add(c.validateSSHAlgorithms())
	if c.Certs.UserTTL > c.Certs.MaxUserTTL {
		add(c.fail("certificates.user_ttl", "%s is longer than certificates.max_user_ttl %s", c.Certs.UserTTL, c.Certs.MaxUserTTL))
	}
	if c.OIDC.Issuer != "" && c.OIDC.ClientID == "" {
		add(c.fail("oidc.client_id", "required when oidc.issuer is set"))
	}
	if l := c.Metrics.Listen; l != "" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			add(c.fail("metrics.listen", "%q is not host:port", l))
		}
	}
	add(c.validateAlerts())
	add(c.validateCA())
	if s := c.Audit.Stream; s != "" && s != "stdout" && s != "syslog" && !strings.HasPrefix(s, "file:") {
		add(c.fail("audit.stream", "%q: want stdout, syslog or file:/path", s))
	}
	add(c.validateTargets())
	add(c.validateRoles())
	add(c.validateRetention())
	add(c.validateRecordingS3())
	if len(errs) > 0 {
		return errs[0] // one line the operator can act on; fix, rerun
	}
	return nil
}

func (c *Config) validateTargets() error {
	seen := map[string]bool{}
	for i, t := range c.Targets {
		key := fmt.Sprintf("targets[%d]", i)
		if !targetNameRE.MatchString(t.Name) {
			return c.fail(key+".name", "%q: use lower-case letters, digits, '.', '_' and '-' (no '@' or ':')", t.Name)
		}
		if seen[t.Name] {
			return c.fail(key+".name", "target %q is defined twice", t.Name)
		}
		seen[t.Name] = true
		switch t.Kind {
		case "ssh":
			if _, _, err := net.SplitHostPort(t.Address); err != nil {
				return c.fail(key+".address", "%q is not host:port", t.Address)
			}
			if t.HostKey == "" && t.HostCA == "" {
				return c.fail(key, "target %q needs host_key or host_ca: unknown host keys are refused", t.Name)
			}
			for _, k := range []struct{ n, v string }{{"host_key", t.HostKey}, {"host_ca", t.HostCA}} {
				if k.v != "" {
					if _, err := ParseAuthorizedKey(k.v); err != nil {
						return c.fail(key+"."+k.n, "target %q: %v", t.Name, err)
					}
				}
			}
		case "docker":
		default:
			return c.fail(key+".kind", "%q: want ssh or docker", t.Kind)
		}
	}
	return nil
}

func (c *Config) validateRoles() error {
	roles := map[string]bool{}
	for i, r := range c.Roles {
		key := fmt.Sprintf("roles[%d]", i)
		if !targetNameRE.MatchString(r.Name) {
			return c.fail(key+".name", "%q is not a valid role name", r.Name)
		}
		if roles[r.Name] {
			return c.fail(key+".name", "role %q is defined twice", r.Name)
		}
		roles[r.Name] = true
		for _, p := range r.Options.Permissions {
			if p != "admin" && p != "auditor" {
				return c.fail(key+".options.permissions", "%q: want admin or auditor", p)
			}
		}
		for _, pats := range [][]string{r.Allow.Targets.Names, r.Deny.Targets.Names} {
			for _, p := range pats {
				if _, err := filepath.Match(p, ""); err != nil {
					return c.fail(key+".allow.targets.names", "bad pattern %q", p)
				}
			}
		}
	}
	for i, r := range c.Roles {
		key := fmt.Sprintf("roles[%d].options", i)
		if n := r.Options.ApprovalsRequired; n < 0 || n > 5 {
			return c.fail(key+".approvals_required", "%d: want 1 to 5", n)
		}
		if r.Options.MaxSessions < 0 {
			return c.fail(key+".max_sessions", "must not be negative")
		}
		if r.Options.MaxRequestTTL < 0 {
			return c.fail(key+".max_request_ttl", "must not be negative")
		}
		for _, name := range r.Options.ReviewRequests {
			if !roles[name] {
				return c.fail(key+".review_requests", "unknown role %q", name)
			}
		}
	}
	for i, b := range c.Bindings {
		key := fmt.Sprintf("bindings[%d]", i)
		if (b.User == "") == (b.Group == "") {
			return c.fail(key, "set exactly one of user or group")
		}
		for _, r := range b.Roles {
			if !roles[r] {
				return c.fail(key+".roles", "unknown role %q", r)
			}
		}
	}
	return nil
}

// lineOf finds the line of a dotted key such as "targets[1].address", or the
// nearest existing parent. It returns 0 when unknown.
func (c *Config) lineOf(key string) int {
	if c.root == nil || len(c.root.Content) == 0 {
		return 0
	}
	n := c.root.Content[0]
	line := n.Line
	for _, part := range strings.Split(key, ".") {
		name, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			name = part[:i]
			fmt.Sscan(part[i+1:len(part)-1], &idx)
		}
		next := mapValue(n, name)
		if next == nil {
			return line
		}
		n, line = next, next.Line
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			if n.Content[i+1].Kind == yaml.ScalarNode {
				return n.Content[i] // the key line is the value line
			}
			return n.Content[i+1]
		}
	}
	return nil
}

// Target returns the configured target with that name.
func (c *Config) Target(name string) (Target, bool) {
	for _, t := range c.Targets {
		if t.Name == name {
			return t, true
		}
	}
	return Target{}, false
}

// Database is the database section.
type Database struct {
	// URL is empty (SQLite at DataDir/gatehouse.db), "sqlite:PATH" or
	// "postgres://user:password@host:port/db?sslmode=..." (sslmode defaults
	// to verify-full; anything weaker is logged as a warning at start). The
	// GATEHOUSE_DATABASE_URL environment variable wins, so the password need
	// not be in the file.
	URL string `yaml:"url"`
	// InstanceLease is how long an instance counts as alive after its last
	// heartbeat (renewed every fifth of it); once it has run out, another
	// instance seals the sessions the instance left open. Zero means 15s.
	InstanceLease time.Duration `yaml:"instance_lease"`
}

func (c *Config) validateRecordingS3() error {
	s := c.Recording.S3
	if !s.Enabled() {
		if s.Endpoint != "" || s.Prefix != "" || s.ObjectLockDays != 0 {
			return c.fail("recording.s3.bucket", "required when other recording.s3 keys are set")
		}
		return nil
	}
	if s.ObjectLockDays < 0 {
		return c.fail("recording.s3.object_lock_days", "must not be negative")
	}
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return c.fail("recording.s3.endpoint", "%q is not an http(s) URL", s.Endpoint)
		}
	}
	if strings.HasPrefix(s.Prefix, "/") {
		return c.fail("recording.s3.prefix", "%q must not start with /", s.Prefix)
	}
	return nil
}
