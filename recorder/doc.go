// Package recorder keeps what happened in sessions: the session rows
// (sessions.go), encrypted session recordings (recording*.go) and their
// readers, with the commands reconstructed from them. The tamper-evident
// audit log is package recorder/audit (recording code may depend on it,
// never the reverse); the sftp protocol tap is package recorder/sftptap.
//
// Nothing crosses the gateway without a record: the gateway starts a recording
// and writes the session-start audit event before it relays the first byte, and
// fails closed when either cannot be written.
package recorder
