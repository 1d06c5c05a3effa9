package app

import (
	"context"
	"log/slog"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/recorder/sftptap"

	"github.com/gatehouse/gatehouse/gateway"
	"github.com/gatehouse/gatehouse/internal/target"
	"github.com/gatehouse/gatehouse/recorder"
)

// recordingsAdapter gives the gateway the recorder in the gateway's terms.
type recordingsAdapter struct{ r *recorder.Recordings }

func (a recordingsAdapter) Start(info gateway.RecordingInfo) (gateway.Recording, error) {
	si := recorder.SessionInfo{SessionID: info.SessionID, User: info.User, Target: info.Target, Login: info.Login,
		Start: info.Start, Cols: info.Cols, Rows: info.Rows, Term: info.Term, Command: info.Command,
		Interactive: info.Interactive, StdinShell: info.StdinShell}
	if info.OnCommand != nil {
		si.OnCommand = func(c recorder.Command) { info.OnCommand(c.Text, c.Source, c.Offset) }
	}
	rec, err := a.r.Start(si)
	if err != nil {
		return nil, err
	}
	return &recordingAdapter{Recording: rec}, nil
}

type recordingAdapter struct {
	*recorder.Recording
	streams map[string]gateway.StreamSummary
}

func (r *recordingAdapter) Close(reason string) (string, bool, error) {
	sum, err := r.Recording.Close(reason)
	for name, ss := range sum.Streams {
		if r.streams == nil {
			r.streams = map[string]gateway.StreamSummary{}
		}
		r.streams[name] = gateway.StreamSummary{Bytes: ss.Bytes, Stored: ss.Stored, SHA256: ss.SHA256}
	}
	return sum.SHA256, sum.Complete, err
}

func (r *recordingAdapter) Streams() map[string]gateway.StreamSummary { return r.streams }

// newFileTap itemises sftp operations with the recorder's sftp parser.
func newFileTap(onOp func(gateway.FileOp)) gateway.FileTap {
	return sftptap.New(func(op sftptap.FileOp) {
		onOp(gateway.FileOp{Op: op.Op, Path: op.Path, NewPath: op.NewPath, BytesRead: op.BytesRead,
			BytesWritten: op.BytesWritten, Err: op.Err})
	})
}

// dockerDialer reaches containers through the Docker Engine API.
type dockerDialer struct{ log *slog.Logger }

func newDockerDialer(log *slog.Logger) gateway.DockerDialer { return dockerDialer{log} }

func (d dockerDialer) options(t gateway.Target) target.DockerOptions {
	o := t.Docker
	o.Logger = d.log
	return o
}

func (d dockerDialer) Dial(ctx context.Context, t gateway.Target, container, login string) (target.Conn, error) {
	return target.DialDocker(ctx, d.options(t), container, login)
}

func (d dockerDialer) Labels(ctx context.Context, t gateway.Target, container string) (map[string]string, error) {
	return target.DockerContainerLabels(ctx, d.options(t), container)
}

// approverAdapter gives the gateway browser approvals and TOTP.
type approverAdapter struct {
	a *auth.Approvals
	t *auth.TOTP
}

func (x approverAdapter) Reuse(req auth.ApprovalRequest) (auth.Identity, bool) { return x.a.Reuse(req) }

func (x approverAdapter) Begin(ctx context.Context, req auth.ApprovalRequest) (*auth.PendingApproval, error) {
	return x.a.Begin(ctx, req)
}

func (x approverAdapter) Remember(fp, user string)           { x.a.Remember(fp, user) }
func (x approverAdapter) KnownUser(fp string) (string, bool) { return x.a.KnownUser(fp) }

func (x approverAdapter) VerifyTOTP(ctx context.Context, user, code string) error {
	return x.t.Verify(ctx, user, code)
}
