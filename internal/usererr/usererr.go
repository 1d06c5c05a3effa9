// Package usererr is the one error type that separates what a person may
// see from what only the operator's log may hold.
//
// Domain packages (auth, policy, gateway) return an *Error where a person
// should read a specific line ("certificate has expired (run 'gatehouse
// login')"); the front doors (web, gateway banners) show Message(err) and
// log err itself. Any other error — a token exchange that failed, a
// database that went away — is shown as one generic line with a reference
// that is also logged, so the operator can find the detail and the browser
// never sees it. Nothing here cuts messages out of error strings: the line a
// person sees is chosen where the error is made.
//
// The shape follows Tailscale's userVisibleError and smallstep's
// errs.Error: a safe message, and the underlying error for Unwrap and logs.
package usererr

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// Error carries the line a person may see and, optionally, the detail that
// is only logged.
type Error struct {
	// Pkg is the package that returns the error; Error() starts with
	// "Pkg: " (the project's error-prefix convention). Empty for none.
	Pkg string
	// Msg is the one line a person may see: what happened and what to do,
	// never internals (no SQL, no token responses, no paths).
	Msg string
	// Err is the detail for the log (nil when Msg says it all). It is
	// returned by Unwrap, so errors.Is and errors.As see through.
	Err error
}

// New returns an error whose whole text a person may see. pkg prefixes
// Error() (e.g. "auth"); it never appears in Message.
func New(pkg, msg string) error { return &Error{Pkg: pkg, Msg: msg} }

// Wrap attaches msg, which a person may see, to err, which is only logged.
func Wrap(err error, pkg, msg string) error { return &Error{Pkg: pkg, Msg: msg, Err: err} }

// Error is the text for logs and audit events: "pkg: msg: detail".
func (e *Error) Error() string {
	s := e.Msg
	if e.Pkg != "" {
		s = e.Pkg + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the detail.
func (e *Error) Unwrap() error { return e.Err }

// Generic is the line shown for an error that carries no message of its
// own; %s is the reference logged with the detail.
const Generic = "internal error; the operator has the details (ref %s)"

// Message returns the line a person may see for err: the Msg of the first
// *Error in its chain. For any other error it returns the generic line
// with a fresh reference, and ref is that reference: the caller logs err
// under it ("ref", ref), which is how the operator finds the detail. ref is
// empty when the message is err's own. Message(nil) is "".
func Message(err error) (msg, ref string) {
	if err == nil {
		return "", ""
	}
	var ue *Error
	if errors.As(err, &ue) && ue.Msg != "" {
		return ue.Msg, ""
	}
	ref = newRef()
	return fmt.Sprintf(Generic, ref), ref
}

// Visible reports whether err carries a message a person may see.
func Visible(err error) bool {
	var ue *Error
	return errors.As(err, &ue) && ue.Msg != ""
}

// newRef is a short random reference (8 hex digits) that ties a generic
// message to its log line.
func newRef() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "unavailable"
	}
	return hex.EncodeToString(b[:])
}
