package audit

import "time"

// Event types written to the audit log.
const (
	EventLogin           = "login"             // web/OIDC login completed
	EventLogout          = "logout"            // web session ended
	EventMFASuccess      = "mfa.success"       // TOTP accepted
	EventMFAFailure      = "mfa.failure"       // TOTP rejected
	EventMFALockout      = "mfa.lockout"       // too many TOTP failures
	EventMFAEnrol        = "mfa.enrol"         // TOTP enrolled or reset
	EventCertIssued      = "cert.issued"       // user certificate issued
	EventAuthFailure     = "auth.failure"      // SSH client authentication refused
	EventSessionStart    = "session.start"     // session channel started on a target
	EventSessionEnd      = "session.end"       // session channel ended
	EventSessionDenied   = "session.denied"    // policy refused a session
	EventCommand         = "command"           // exec request or reconstructed command
	EventCommandWarn     = "command.warn"      // an exec request or typed line matched a warn.commands rule and ran
	EventCommandDenied   = "command.denied"    // a typed line matched a deny.commands rule and was not run
	EventFile            = "file"              // sftp/scp file operation
	EventForwardStart    = "forward.start"     // port forward opened
	EventForwardEnd      = "forward.end"       // port forward closed
	EventForwardDenied   = "forward.denied"    // port forward refused
	EventLock            = "lock"              // user locked or unlocked
	EventAdminChange     = "admin.change"      // configuration or user change by an admin
	EventRecordingAccess = "recording.access"  // a recording was opened or exported
	EventExport          = "audit.export"      // audit log exported
	EventKeyRotated      = "audit.key_rotated" // audit signing key rotated
	EventPrune           = "audit.prune"       // retention removed old events or recordings
	EventRequestCreated  = "request.created"   // a just-in-time access request was filed
	EventRequestApproved = "request.approved"  // a reviewer approved an access request
	EventRequestDenied   = "request.denied"    // a reviewer denied one, or a self-approval was refused
	EventRequestExpired  = "request.expired"   // a grant ended, or a request waited too long
)

// Event is one audit log entry. Time is UTC; the log assigns ID and the
// chain hashes. Details holds type-specific fields (string, integer or bool
// values only, so the canonical encoding is unambiguous).
type Event struct {
	ID   int64
	Time time.Time
	Type string

	User        string // Gatehouse user name
	UserIssuer  string // OIDC issuer, empty for admin-issued certificates
	UserSubject string // OIDC subject

	ClientAddr     string // client IP:port
	ClientVersion  string // client SSH version string or HTTP user agent
	KeyFingerprint string // SHA256 fingerprint of the client key
	CertSerial     uint64 // user certificate serial

	Target    string
	Login     string
	SessionID string

	Reason  string // decision reason or outcome, human readable
	Details map[string]any
}
