// Package recorder keeps what happened: session records (sessions.go), the
// tamper-evident audit log (audit*.go) and encrypted session recordings
// (recording*.go) with the commands reconstructed from them.
//
// Nothing crosses the gateway without a record: the gateway starts a recording
// and writes the session-start audit event before it relays the first byte, and
// fails closed when either cannot be written.
package recorder
