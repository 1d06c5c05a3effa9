// Package target holds the backends that reach targets for the gateway: OpenSSH
// hosts (ssh.go) and Docker containers (docker.go).
//
// A backend connection looks to the gateway like the target side of an SSH
// connection: it opens channels ("session", "direct-tcpip") and each channel
// carries the standard SSH channel requests (pty-req, env, shell, exec,
// subsystem, window-change, signal) in, and exit-status / exit-signal out. The
// gateway's relay and recorder therefore treat every kind of target alike.
package target

import (
	"errors"

	"golang.org/x/crypto/ssh"
)

// Conn is a connection to one target as one login.
type Conn interface {
	// OpenChannel opens a channel of the given SSH channel type; extra is the
	// type-specific data (RFC 4254). Requests arriving from the target (for
	// example exit-status) are delivered on the returned channel, which is
	// closed when the channel closes. A backend that does not support a
	// channel type returns an *ssh.OpenChannelError with ssh.UnknownChannelType
	// or ssh.Prohibited and a message the user can read.
	OpenChannel(name string, extra []byte) (ssh.Channel, <-chan *ssh.Request, error)
	// Close closes the connection and every channel on it.
	Close() error
	// Wait blocks until the connection ends and reports why.
	Wait() error
}

// ErrHostKeyMismatch is wrapped by errors for a target whose host key is not
// the pinned one and is not certified by the configured host CA.
var ErrHostKeyMismatch = errors.New("target: host key not trusted")

// ErrUnreachable is wrapped by errors for a target that cannot be reached.
var ErrUnreachable = errors.New("target: unreachable")
