package policy

import "time"

// Policy is the set of rules the Engine decides with: roles and the
// bindings that give them to users and groups. The configuration loader
// translates the YAML into it (internal/app); policy never reads the file.
type Policy struct {
	Roles    []Role
	Bindings []Binding
}

// Role grants access; Deny always wins over Allow.
type Role struct {
	Name  string
	Allow Rules
	Deny  Rules
	// Warn uses only Commands (narrowed by Targets and Logins when set):
	// matching exec requests run and are audited as command.warn.
	Warn    Rules
	Options RoleOptions
}

// Rules select targets and logins. An empty Rules matches nothing.
type Rules struct {
	Targets Selector
	// Logins are the target accounts. Empty matches no login. "*" matches any.
	Logins []string
	// ContainerLabels select containers by their Docker labels.
	ContainerLabels map[string]string
	// Commands: under Allow, the only exec commands the role allows (matched
	// on the parsed argument list; see docs/policy.md); under Deny and Warn,
	// patterns checked against every command in an exec request. Empty means
	// no restriction from this rule.
	Commands []string
}

// Selector matches targets by name glob or by labels (all must match).
// An empty Selector matches nothing.
type Selector struct {
	Names  []string
	Labels map[string]string
}

// RoleOptions are the permissions a role grants beyond reaching a target.
// Every zero value denies; when a user has several roles, each option is
// granted if any matching role grants it, and limits take the smallest.
type RoleOptions struct {
	// PortForwarding allows local port forwarding (ssh -L). Zero denies.
	PortForwarding bool
	// SFTP allows the sftp subsystem (scp, sftp, rsync use it). Zero denies.
	SFTP bool
	// AgentForwarding allows ssh -A. Zero denies.
	AgentForwarding bool
	// MaxSessionTTL ends sessions after this long. Zero means no limit.
	MaxSessionTTL time.Duration
	// IdleTimeout ends sessions with no input or output for this long.
	// Zero means no idle limit.
	IdleTimeout time.Duration
	// CertTTL caps user certificates of users holding the role. Zero means
	// the default user certificate lifetime.
	CertTTL time.Duration
	// RequireSessionMFA asks a fresh TOTP code for each session. Zero means no.
	RequireSessionMFA bool
	// ViewInput lets the role read recorded keystrokes. Zero denies.
	ViewInput bool
	// Permissions are web UI permissions: "admin", "auditor". Empty grants
	// nothing beyond one's own sessions.
	Permissions []string
	// Requestable lets any signed-in user ask for this role for a while
	// (just-in-time access); the grant takes effect once approved. Zero:
	// the role is only held through bindings.
	Requestable bool
	// MaxSessions caps the sessions a user holding this role has open at
	// once through one gateway. Of the user's roles the smallest non-zero
	// value applies. Zero: no cap from this role.
	MaxSessions int
	// ApprovalsRequired is how many different reviewers must approve a
	// request for this role. Zero means 1.
	ApprovalsRequired int
	// MaxRequestTTL caps how long a request for this role may ask for.
	// Zero means 8h.
	MaxRequestTTL time.Duration
	// ReviewRequests names the roles whose access requests holders of this
	// role (through a binding, never through a grant) may approve or deny.
	ReviewRequests []string
}

// Binding maps a user or a group to roles. Exactly one of User, Group.
type Binding struct {
	User  string
	Group string
	Roles []string
}
