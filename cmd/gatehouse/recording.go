package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

func init() {
	register(command{name: "recording", summary: "session recordings: list, export <id> (decrypted .cast for asciinema play, or --raw streams)", run: func(args []string, stdout, stderr io.Writer) error {
		return subcommand("recording", args, stdout, stderr, map[string]func([]string, io.Writer, io.Writer) error{
			"list": runRecordingList, "export": runRecordingExport,
		})
	}})
}

func openRecordings(env *appEnv) (*recorder.Recordings, error) {
	return recorder.OpenRecordings(env.cfg.Recording.Dir, env.db, env.secrets.Keyring(), recorder.RecordingOptions{S3: app.RecordingS3(env.cfg.Recording.S3)})
}

func runRecordingList(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("recording list", stderr)
	n := fs.Int("n", 50, "number of recordings, newest first")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	env, err := openEnv(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	recs, err := recorder.NewSessionStore(env.db.DB).RecentRecordings(context.Background(), *n)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-32s  %-20s  %-10s  %-24s  %-8s  %10s  %s\n", "RECORDING", "STARTED (UTC)", "USER", "LOGIN@TARGET", "STATUS", "BYTES", "COMMAND")
	for _, r := range recs {
		status := "complete"
		switch {
		case r.Ended.IsZero():
			status = "live"
		case !r.Complete:
			status = "partial"
		}
		cmd := recordingLabel(r.Command, r.Kind, r.Interactive, r.Commands)
		fmt.Fprintf(stdout, "%-32s  %-20s  %-10s  %-24s  %-8s  %10d  %s\n", r.ID, r.Started.Format("2006-01-02 15:04:05"),
			r.User, r.Login+"@"+r.Target, status, r.Bytes, cmd)
	}
	return nil
}

func runRecordingExport(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("recording export", stderr)
	out := fs.String("out", "", "output file (default <id>.cast); with --raw a directory (default <id>.raw)")
	withInput := fs.Bool("input", false, "include recorded keystrokes as \"i\" events (may contain passwords); with --raw, write stdin too")
	raw := fs.Bool("raw", false, "write the exact recorded bytes of each stream (stdout, stderr, stdin) as files instead of asciicast")
	if err := fs.Parse(reorder(args)); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: gatehouse recording export <id> [--out FILE|DIR] [--input] [--raw]")
		return errUsage
	}
	id := fs.Arg(0)
	env, l, err := openAudit(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	defer l.Close()
	recs, err := openRecordings(env)
	if err != nil {
		return err
	}
	defer recs.Close()
	ctx := context.Background()
	meta, err := recs.Meta(ctx, id)
	if err != nil {
		return err
	}
	// Access to a recording is audited before it is decrypted.
	if err := l.Append(ctx, audit.Event{Type: audit.EventRecordingAccess, User: osUser(), SessionID: meta.SessionID,
		Target: meta.Target, Login: meta.Login, Reason: "recording export (cli)",
		Details: map[string]any{"recording": id, "with_input": *withInput, "raw": *raw, "recorded_user": meta.User}}); err != nil {
		return err
	}
	if *raw {
		return exportRaw(ctx, recs, id, *out, *withInput, meta, stdout)
	}
	rc, err := recs.OpenCast(ctx, id, *withInput)
	if err != nil {
		return err
	}
	defer rc.Close()
	path := *out
	if path == "" {
		path = id + ".cast"
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	state := "complete"
	if !meta.Complete {
		state = "INCOMPLETE: " + meta.Reason
	}
	fmt.Fprintf(stdout, "wrote %s (%s; play with: asciinema play %s)\n", path, state, path)
	return nil
}

// recordingLabel is the COMMAND column of `recording list`: the exec
// command, or what kind of session it was.
func recordingLabel(cmd, kind string, interactive bool, ncmds int64) string {
	switch {
	case cmd != "" && recorder.ShellReadsStdin(cmd):
		return fmt.Sprintf("%s (shell, script on stdin: %d commands)", cmd, ncmds)
	case cmd != "":
		return cmd
	case interactive:
		return fmt.Sprintf("(shell, %d commands)", ncmds)
	case kind == "shell":
		return fmt.Sprintf("(shell without a terminal, script on stdin: %d commands)", ncmds)
	case strings.HasPrefix(kind, "subsystem:"):
		return "(" + strings.TrimPrefix(kind, "subsystem:") + ": file operations are in the audit log)"
	default:
		return "(file transfer: operations are in the audit log)"
	}
}

// exportRaw writes each recorded stream of a recording to DIR/<stream> and
// says, per stream, how much the recording holds of what passed.
func exportRaw(ctx context.Context, recs *recorder.Recordings, id, dir string, withInput bool, meta recorder.RecordingMeta, stdout io.Writer) error {
	if dir == "" {
		dir = id + ".raw"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	res, err := recs.ExportRaw(ctx, id, withInput, func(stream string) (io.Writer, error) {
		f, err := os.OpenFile(filepath.Join(dir, stream), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err == nil {
			files = append(files, f)
		}
		return f, err
	})
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := f.Close(); err != nil {
			return err
		}
	}
	files = nil
	state := "complete"
	if !meta.Complete {
		state = "INCOMPLETE: " + meta.Reason
	}
	fmt.Fprintf(stdout, "wrote %s (%s)\n", dir, state)
	if res.Interactive {
		fmt.Fprintln(stdout, "  a terminal session: stdout is what the terminal showed")
	}
	for _, name := range []string{"stdout", "stderr", "stdin"} {
		n, wrote := res.Written[name]
		sealed, ok := res.Sealed[name]
		switch {
		case ok && sealed.Full():
			fmt.Fprintf(stdout, "  %s: %d of %d bytes recorded (recording.stream_full_bytes); sha256 of all %d bytes %s\n",
				name, n, sealed.Bytes, sealed.Bytes, sealed.SHA256)
		case ok:
			fmt.Fprintf(stdout, "  %s: %d bytes, sha256 %s\n", name, n, sealed.SHA256)
		case wrote:
			fmt.Fprintf(stdout, "  %s: %d bytes\n", name, n)
		}
	}
	return nil
}
