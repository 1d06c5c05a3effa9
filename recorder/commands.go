package recorder

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/recorder/cmdline"
)

// maxReconstructBytes skips command reconstruction for sessions with more
// output than a person types commands into (the recording is kept whole).
const maxReconstructBytes = 64 << 20

// Commands of interactive sessions are read off the screen live, as the
// session runs (see package cmdline and Recording.onLine): each is stored and
// passed to SessionInfo.OnCommand within moments of the Enter that ran it.

// reconstructMissed replays an interactive recording left open by a crash
// through a Tracker and stores the commands after the last one stored live
// (those typed in the last moments before the crash), so no command is
// stored twice.
func (r *Recordings) reconstructMissed(id string) []Command {
	ctx := context.Background()
	m, err := r.row(ctx, id)
	if err != nil || m.Bytes > maxReconstructBytes {
		return nil
	}
	var after int64 = -1
	r.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(offset_us), -1) FROM recording_commands WHERE recording_id = ?`, id).Scan(&after)
	var cmds []Command
	tr := cmdline.New(m.Cols, m.Rows, func(c cmdline.Command) {
		if c.Offset.Microseconds() > after {
			cmds = append(cmds, Command{Time: m.Started.Add(c.Offset), Offset: c.Offset, Source: "screen", Text: c.Text})
		}
	})
	defer tr.Close()
	if err := r.readEvents(m, func([]byte) {}, func(ev castEvent) error { feedTracker(tr, ev.Type, ev.T, ev.Data); return nil }); err != nil {
		r.log.Warn("command reconstruction stopped early", "recording", id, "err", err)
	}
	r.saveCommands(id, cmds)
	return cmds
}

// feedTracker applies one recording event to a command-line tracker.
func feedTracker(tr *cmdline.Tracker, typ byte, t uint64, data []byte) {
	switch typ {
	case 'o':
		tr.Output(data, t)
	case 'i':
		tr.Input(data, t)
	case 'r':
		if c, rw, ok := parseSize(string(data)); ok {
			tr.Resize(c, rw)
		}
	}
}

func parseSize(s string) (int, int, bool) {
	c, r, ok := strings.Cut(s, "x")
	cols, err1 := strconv.Atoi(c)
	rows, err2 := strconv.Atoi(r)
	return cols, rows, ok && err1 == nil && err2 == nil && cols > 0 && rows > 0 && cols <= 1000 && rows <= 1000
}

// shells are the interpreters whose stdin is a script when run without -c.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "ash": true, "zsh": true, "ksh": true, "mksh": true}

// ShellReadsStdin reports whether an exec command runs a shell that reads
// its script from stdin ("bash", "/bin/sh -s", "bash -l -e"), as tools do
// with "ssh host bash < script". A command string (-c) or a script file
// argument is not stdin.
func ShellReadsStdin(command string) bool {
	f := strings.Fields(command)
	if len(f) == 0 || len(f) > 8 {
		return false
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if !shells[name] {
		return false
	}
	for _, a := range f[1:] {
		if !strings.HasPrefix(a, "-") || strings.Contains(a, "c") && !strings.HasPrefix(a, "--") {
			return false
		}
	}
	return true
}

// Limits on the commands listed from a script on stdin.
const (
	maxStdinCommands = 10000
	maxStdinLine     = 4096
)

// stdinCommands lists the lines a shell without a terminal read from stdin
// (a script piped to "ssh host bash"): each non-blank, non-comment line is a
// command with source "stdin", at the time its newline arrived. Commands are
// stored, and passed to onCommand when set.
func (r *Recordings) stdinCommands(id string, onCommand func(Command)) []Command {
	ctx := context.Background()
	m, err := r.row(ctx, id)
	if err != nil || m.Bytes > maxReconstructBytes {
		return nil
	}
	sl := stdinLines{start: m.Started}
	if err := r.readEvents(m, func([]byte) {}, sl.event); err != nil {
		r.log.Warn("stdin command listing stopped early", "recording", id, "err", err)
	}
	sl.flush(sl.last)
	r.saveCommands(id, sl.cmds)
	if onCommand != nil {
		for _, c := range sl.cmds {
			onCommand(c)
		}
	}
	return sl.cmds
}

// stdinLines splits the input stream of a recording into commands.
type stdinLines struct {
	start time.Time
	line  []byte
	last  uint64
	cmds  []Command
}

func (sl *stdinLines) event(ev castEvent) error {
	if ev.Type != 'i' {
		return nil
	}
	sl.last = ev.T
	for _, b := range ev.Data {
		if b == '\n' {
			sl.flush(ev.T)
			continue
		}
		if len(sl.line) < maxStdinLine {
			sl.line = append(sl.line, b)
		}
	}
	return nil
}

// flush ends the current line at offset t (microseconds).
func (sl *stdinLines) flush(t uint64) {
	text := strings.TrimSpace(strings.ToValidUTF8(string(sl.line), "\uFFFD"))
	sl.line = sl.line[:0]
	if text == "" || strings.HasPrefix(text, "#") || len(sl.cmds) >= maxStdinCommands {
		return
	}
	off := time.Duration(t) * time.Microsecond
	sl.cmds = append(sl.cmds, Command{Time: sl.start.Add(off), Offset: off, Source: "stdin", Text: text})
}
