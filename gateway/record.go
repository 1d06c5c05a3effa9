package gateway

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// FileOp is one sftp file operation seen in a session.
type FileOp struct {
	Op, Path, NewPath       string
	BytesRead, BytesWritten int64
	Err                     string
}

// FileTap parses an sftp byte stream into file operations.
type FileTap interface {
	ClientToServer(p []byte)
	ServerToClient(p []byte)
	Close()
}

// errNotRecorded is what the user sees when a session cannot be recorded.
var errNotRecorded = errors.New("this session cannot be recorded, so it is refused; please tell your administrator")

// startRecording starts the recording, writes the session row and the
// session-start audit event. Any failure refuses the session (fail closed).
func (s *session) startRecording() error {
	c := s.c
	if c.s.cfg.Recorder == nil {
		c.s.log.Error("session refused: no recorder configured", "session", s.id)
		return errNotRecorded
	}
	info := RecordingInfo{SessionID: s.id, User: c.pr.User, Target: c.addr.Target, Login: c.addr.Login,
		Start: c.s.now(), Cols: 80, Rows: 24, Command: s.command, OnCommand: s.onCommand}
	if s.pty != nil {
		info.Cols, info.Rows, info.Term, info.Interactive = int(s.pty.Cols), int(s.pty.Rows), s.pty.Term, true
	} else if s.kind == "shell" || s.kind == "exec" && recorder.ShellReadsStdin(s.command) {
		info.StdinShell = true
	}
	rec, err := c.s.cfg.Recorder.Start(info)
	if err != nil {
		c.s.log.Error("session refused: recording failed to start", "session", s.id, "err", err)
		c.audit(audit.Event{Type: audit.EventSessionDenied, SessionID: s.id, Reason: "recording failed to start: " + err.Error()})
		return errNotRecorded
	}
	s.rec = rec
	s.began = info.Start
	if err := c.s.cfg.Sessions.Start(s.ctx, s.sessionRow()); err != nil {
		c.s.log.Error("session refused: session row", "session", s.id, "err", err)
		rec.Close("session row could not be written")
		return errNotRecorded
	}
	details := map[string]any{"kind": s.kind, "mode": c.mode, "recording": rec.ID(),
		"session_cert_serial": fmt.Sprint(s.certSerial), "reason": s.decision.Reason}
	if m := s.decision.Command; m != nil {
		details["force_command"], details["command_rule"] = m.ForceCommand, m.Rule
	}
	if err := c.audit(audit.Event{Type: audit.EventSessionStart, SessionID: s.id, Reason: s.decision.Reason, Details: details}); err != nil {
		s.finish(errors.New("audit log unavailable"))
		return errNotRecorded
	}
	if s.kind == "exec" {
		rec.Exec(s.command)
		if err := c.audit(audit.Event{Type: audit.EventCommand, SessionID: s.id,
			Details: map[string]any{"command": s.command, "source": "exec"}}); err != nil {
			s.finish(errors.New("audit log unavailable"))
			return errNotRecorded
		}
	}
	if s.kind == "subsystem:sftp" && c.s.cfg.NewFileTap != nil {
		s.tap = c.s.cfg.NewFileTap(s.onFileOp)
	}
	return nil
}

// sessionRow is the session's row as Sessions.Start writes it, made from
// what the session and its connection already hold (an idle session does
// not keep a copy).
func (s *session) sessionRow() recorder.Session {
	c := s.c
	return recorder.Session{ID: s.id, User: c.pr.User, ClientAddr: c.remote, ClientVersion: c.clientVersion,
		KeyFingerprint: c.pr.Fingerprint, UserCertSerial: c.pr.Serial, Target: c.addr.Target,
		TargetKind: c.resolved.cfg.Kind, Login: c.addr.Login, Mode: c.mode, Kind: s.kind, Command: s.command,
		SessionCertSerial: s.certSerial, Start: s.began, RecordingID: s.rec.ID()}
}

// onCommand audits a command the recorder reconstructed from the screen.
func (s *session) onCommand(text, source string, offset time.Duration) {
	s.c.audit(audit.Event{Type: audit.EventCommand, SessionID: s.id,
		Details: map[string]any{"command": text, "source": source, "offset_ms": offset.Milliseconds()}})
}

func (s *session) onFileOp(op FileOp) {
	d := map[string]any{"op": op.Op, "path": op.Path}
	if op.NewPath != "" {
		d["new_path"] = op.NewPath
	}
	if op.BytesRead > 0 || op.BytesWritten > 0 {
		d["bytes_read"], d["bytes_written"] = op.BytesRead, op.BytesWritten
	}
	if op.Err != "" {
		d["error"] = op.Err
	}
	s.c.audit(audit.Event{Type: audit.EventFile, SessionID: s.id, Details: d})
}

// finish seals the recording and writes the session's end row and event.
// cause is why it ended abnormally, or nil.
func (s *session) finish(cause error) {
	s.finishOnce.Do(func() { s.doFinish(cause) })
}

func (s *session) doFinish(cause error) {
	c := s.c
	s.mu.Lock()
	exit, signal := s.exitStatus, s.exitSignal
	s.mu.Unlock()
	reason := "exited"
	switch {
	case cause == nil:
	case errors.Is(cause, errDisconnected):
		if exit == nil {
			reason = errDisconnected.reason
		}
	default:
		reason = cause.Error()
	}
	s.recMu.Lock()
	if s.tap != nil {
		s.tap.Close()
	}
	s.recMu.Unlock()
	sha, complete, err := s.rec.Close(reason)
	if err != nil {
		c.s.log.Error("recording seal failed", "session", s.id, "err", err)
	}
	r := s.sessionRow()
	r.End, r.ExitStatus, r.ExitSignal, r.EndReason = c.s.now(), exit, signal, reason
	r.BytesIn, r.BytesOut = s.bytesIn.Load(), s.bytesOut.Load()
	r.RecordingComplete, r.RecordingSHA256 = complete && err == nil, sha
	if err := c.s.cfg.Sessions.Finish(context.WithoutCancel(c.ctx), r); err != nil {
		c.s.log.Error("session end row", "session", s.id, "err", err)
	}
	d := map[string]any{"kind": s.kind, "duration_ms": r.End.Sub(r.Start).Milliseconds(), "bytes_in": r.BytesIn,
		"bytes_out": r.BytesOut, "recording": r.RecordingID, "recording_sha256": sha, "recording_complete": r.RecordingComplete}
	if exit != nil {
		d["exit_status"] = *exit
	}
	if signal != "" {
		d["exit_signal"] = signal
	}
	addStreams(d, s.rec.Streams())
	if s.command != "" {
		d["command"] = s.command
	}
	c.audit(audit.Event{Type: audit.EventSessionEnd, SessionID: s.id, Reason: reason, Details: d})
	c.s.log.Info("session ended", "session", s.id, "user", c.pr.User, "target", c.addr.Target, "login", c.addr.Login,
		"reason", strings.TrimSpace(reason), "bytes_in", r.BytesIn, "bytes_out", r.BytesOut)
}

// addStreams puts the raw streams of a session without a terminal into the
// session.end details: every stream's length and SHA-256, and a note for
// each stream whose bytes the recording holds only in part.
func addStreams(d map[string]any, streams map[string]StreamSummary) {
	if len(streams) == 0 {
		return
	}
	var notes []string
	for name, ss := range streams {
		// Audit details are flat: stdout_bytes, stdout_stored, stdout_sha256.
		d[name+"_bytes"], d[name+"_stored"], d[name+"_sha256"] = ss.Bytes, ss.Stored, ss.SHA256
		if ss.Stored < ss.Bytes {
			notes = append(notes, fmt.Sprintf("%s: %d of %d bytes stored (recording.stream_full_bytes); length, timing and SHA-256 kept for all", name, ss.Stored, ss.Bytes))
		}
	}
	if len(notes) > 0 {
		sort.Strings(notes)
		d["recording_note"] = strings.Join(notes, "; ")
	}
}
