package recorder

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/vt"
)

// maxReconstructBytes skips command reconstruction for sessions with more
// output than a person types commands into (the recording is kept whole).
const maxReconstructBytes = 64 << 20

// reconstruct replays an interactive recording through a VT emulator and
// reads each command from the screen when Enter is pressed, so tab
// completion, history recall and line editing come out as the user saw them.
// It runs when the recording is sealed: one emulator per session costs about
// half a MiB, too much to keep for every live session (see docs/recordings.md).
// Commands are stored, and passed to onCommand when set.
func (r *Recordings) reconstruct(id string, onCommand func(Command)) []Command {
	ctx := context.Background()
	m, err := r.row(ctx, id)
	if err != nil || m.Bytes > maxReconstructBytes {
		return nil
	}
	rc := newReconstructor(m.Cols, m.Rows, m.Started)
	defer rc.close()
	if err := r.readEvents(m, func([]byte) {}, rc.event); err != nil {
		r.log.Warn("command reconstruction stopped early", "recording", id, "err", err)
	}
	r.saveCommands(id, rc.cmds)
	if onCommand != nil {
		for _, c := range rc.cmds {
			onCommand(c)
		}
	}
	return rc.cmds
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

// reconstructor turns output and keystrokes into commands.
type reconstructor struct {
	em    *vt.Emulator
	start time.Time
	cmds  []Command

	atPrompt         bool // a command line is being typed
	promptX, promptY int
	typed            int    // keystrokes since the prompt
	enterAt          uint64 // time of a pressed Enter whose echo has not arrived
	enterPending     bool
}

func newReconstructor(cols, rows int, start time.Time) *reconstructor {
	em := vt.NewEmulator(cols, rows)
	// The emulator answers terminal queries into a pipe; drain it so it
	// never blocks.
	go io.Copy(io.Discard, em)
	return &reconstructor{em: em, start: start}
}

// close ends the drain goroutine by closing the reply pipe directly:
// Emulator.Close writes a flag that Emulator.Read reads without a lock.
func (rc *reconstructor) close() {
	if pw, ok := rc.em.InputPipe().(*io.PipeWriter); ok {
		pw.Close()
	}
}

func (rc *reconstructor) event(ev castEvent) error {
	switch ev.Type {
	case 'o':
		rc.output(ev.Data)
	case 'r':
		if c, rw, ok := parseSize(string(ev.Data)); ok {
			rc.em.Resize(c, rw)
		}
	case 'i':
		for _, b := range ev.Data {
			rc.key(b, ev.T)
		}
	}
	return nil
}

// output applies terminal output; with an Enter pending, the command line
// is read just before the echoed newline.
func (rc *reconstructor) output(p []byte) {
	if rc.enterPending {
		if i := bytesIndexAny(p, "\n"); i >= 0 {
			rc.em.Write(p[:i])
			rc.commit()
			p = p[i:]
		}
	}
	rc.em.Write(p)
}

func bytesIndexAny(p []byte, chars string) int {
	for i, b := range p {
		if strings.IndexByte(chars, b) >= 0 {
			return i
		}
	}
	return -1
}

func (rc *reconstructor) commit() {
	if text := rc.lineText(); text != "" {
		t := rc.enterAt
		rc.cmds = append(rc.cmds, Command{Time: rc.start.Add(time.Duration(t) * time.Microsecond),
			Offset: time.Duration(t) * time.Microsecond, Source: "screen", Text: text})
	}
	rc.enterPending, rc.atPrompt, rc.typed = false, false, 0
}

func parseSize(s string) (int, int, bool) {
	c, r, ok := strings.Cut(s, "x")
	cols, err1 := strconv.Atoi(c)
	rows, err2 := strconv.Atoi(r)
	return cols, rows, ok && err1 == nil && err2 == nil && cols > 0 && rows > 0 && cols <= 1000 && rows <= 1000
}

func (rc *reconstructor) key(b byte, t uint64) {
	if rc.enterPending {
		// Typed ahead before the echo came: nothing more will be echoed
		// for that line (a password prompt reads as empty and is dropped).
		rc.commit()
	}
	if rc.em.IsAltScreen() {
		// Full-screen programs (vim, less, top): not a command line.
		rc.atPrompt = false
		return
	}
	switch b {
	case '\r', '\n':
		// The line is read when the shell echoes the newline: keys often
		// arrive in one chunk (a paste, a fast typist) before their echo.
		if rc.atPrompt && rc.typed > 0 && !rc.enterPending {
			rc.enterPending, rc.enterAt = true, t
			return
		}
		rc.atPrompt, rc.typed = false, 0
	case 0x03, 0x04: // Ctrl-C abandons the line; Ctrl-D ends input
		rc.atPrompt, rc.typed = false, 0
	default:
		if !rc.atPrompt {
			pos := rc.em.CursorPosition()
			rc.atPrompt, rc.promptX, rc.promptY = true, pos.X, pos.Y
		}
		rc.typed++
	}
}

// lineText reads the command line from the prompt position to the end of
// the (possibly wrapped) line the cursor is on. Nothing echoed (a password
// prompt) reads as "".
func (rc *reconstructor) lineText() string {
	cur := rc.em.CursorPosition()
	w, h := rc.em.Width(), rc.em.Height()
	y0 := rc.promptY
	if cur.Y < y0 { // the screen scrolled under a long line
		y0 = cur.Y
	}
	last := max(cur.Y, y0)
	var sb strings.Builder
	for y := y0; y <= last && y < h; y++ {
		x0 := 0
		if y == rc.promptY && y == y0 {
			x0 = rc.promptX
		}
		for x := x0; x < w; x++ {
			c := rc.em.CellAt(x, y)
			switch {
			case c == nil || c.Content == "":
				if c == nil || c.Width != 0 {
					sb.WriteByte(' ')
				}
			default:
				sb.WriteString(c.Content)
			}
		}
	}
	return strings.TrimSpace(sb.String())
}
