package recorder

import (
	"context"
	"testing"
	"time"
)

// RecentRecordings lists what `gatehouse recording list` shows: newest
// first, live ones without an end, the session's kind, and only the
// commands reconstructed from the recording (not the exec request);
// RecordingCommands returns them all in order.
func TestRecentRecordingsAndTheirCommands(t *testing.T) {
	r, db, _ := newRecordings(t, RecordingOptions{})
	ss := NewSessionStore(db.DB)
	ctx := context.Background()
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	begin := func(id, kind, command string, at time.Time, interactive bool) *Recording {
		rec, err := r.Start(SessionInfo{SessionID: id, User: "alice", Target: "db-1", Login: "root", Start: at,
			Command: command, Interactive: interactive, StdinShell: kind == "shell" && !interactive})
		if err != nil {
			t.Fatal(err)
		}
		if err := ss.Start(ctx, Session{ID: id, User: "alice", Target: "db-1", Login: "root", Kind: kind, Command: command,
			Start: at, RecordingID: rec.ID()}); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	exec := begin("s-exec", "exec", "uptime", start, false)
	exec.Exec("uptime")
	exec.Output([]byte("up 3 days\n"))
	if _, err := exec.Close("exited 0"); err != nil {
		t.Fatal(err)
	}
	script := begin("s-script", "shell", "", start.Add(time.Minute), false)
	script.Input([]byte("echo one\necho two\n"))
	if _, err := script.Close("exited 0"); err != nil {
		t.Fatal(err)
	}
	live := begin("s-live", "shell", "", start.Add(2*time.Minute), true)
	defer live.Close("done")

	got, err := ss.RecentRecordings(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != live.ID() || got[1].ID != script.ID() || got[2].ID != exec.ID() {
		t.Fatalf("listing %+v, want live, script, exec (newest first)", got)
	}
	if l := got[0]; !l.Ended.IsZero() || l.Kind != "shell" || !l.Interactive || l.SessionID != "s-live" || l.User != "alice" ||
		l.Login != "root" || l.Target != "db-1" || !l.Started.Equal(start.Add(2*time.Minute)) {
		t.Fatalf("live recording %+v", l)
	}
	if l := got[1]; l.Ended.IsZero() || !l.Complete || l.Commands != 2 || l.Kind != "shell" || l.Bytes == 0 {
		t.Fatalf("script recording %+v, want ended, complete, 2 commands", l)
	}
	if l := got[2]; l.Command != "uptime" || l.Kind != "exec" || l.Commands != 0 {
		t.Fatalf("exec recording %+v, want the exec request not counted", l)
	}
	if only, err := ss.RecentRecordings(ctx, 1); err != nil || len(only) != 1 || only[0].ID != live.ID() {
		t.Fatalf("limit 1: %+v, %v", only, err)
	}
	cmds, err := ss.RecordingCommands(ctx, script.ID())
	if err != nil || len(cmds) != 2 || cmds[0].Text != "echo one" || cmds[1].Text != "echo two" || cmds[0].Source != "stdin" {
		t.Fatalf("script commands %+v, %v", cmds, err)
	}
	if cmds, err := ss.RecordingCommands(ctx, exec.ID()); err != nil || len(cmds) != 1 || cmds[0].Source != "exec" || cmds[0].Text != "uptime" {
		t.Fatalf("exec commands %+v, %v", cmds, err)
	}
}
