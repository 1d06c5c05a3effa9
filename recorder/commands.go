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

	atPrompt         bool   // a command line is being typed
	promptX, promptY int    // where typing started; the scrollback is emptied then
	typed            int    // keystrokes since the prompt
	enterAt          uint64 // time of a pressed Enter whose echo has not arrived
	enterPending     bool
	outputAfterEnter bool // output came after that Enter, without a newline

	// Typing ahead: keys that came after an Enter and before any answer
	// (a pasted block, a fast typist) belong to lines whose prompt is not
	// on the screen yet. Those lines are found by the prompt's text.
	promptText  string   // the screen left of where typing started
	queued      []uint64 // times of typed-ahead Enters, oldest first
	aheadKeys   bool     // typed-ahead keys after the last queued Enter
	byPrompt    bool     // the current line starts after promptText
	outputSince bool     // output came since the last key
}

// scrollbackRows is the emulator's scrollback: it holds the start of a
// command line that wrapped and scrolled off the top of the screen.
const scrollbackRows = 256

func newReconstructor(cols, rows int, start time.Time) *reconstructor {
	em := vt.NewEmulator(cols, rows)
	em.SetScrollbackSize(scrollbackRows)
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
// is read just before the echoed newline, and typed-ahead lines at the
// newlines after theirs.
func (rc *reconstructor) output(p []byte) {
	rc.outputSince = rc.outputSince || len(p) > 0
	for rc.enterPending || len(rc.queued) > 0 {
		i := bytesIndexAny(p, "\n")
		if i < 0 {
			rc.outputAfterEnter = rc.outputAfterEnter || (rc.enterPending && len(p) > 0)
			break
		}
		rc.em.Write(p[:i])
		if rc.enterPending {
			rc.commit()
		} else {
			rc.commitQueued()
		}
		rc.em.Write(p[i : i+1])
		p = p[i+1:]
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
		rc.add(rc.enterAt, text)
	}
	rc.enterPending, rc.outputAfterEnter, rc.atPrompt, rc.typed, rc.byPrompt = false, false, false, 0, false
	if rc.aheadKeys && len(rc.queued) == 0 {
		// A line was begun ahead: it goes on after the next prompt.
		rc.atPrompt, rc.typed, rc.byPrompt, rc.aheadKeys = true, 1, true, false
	}
}

// commitQueued reads the oldest typed-ahead line at a newline, if the
// cursor's line starts with the prompt (other newlines are output).
func (rc *reconstructor) commitQueued() {
	rc.byPrompt = true
	text, ok := rc.promptLine()
	rc.byPrompt = false
	if !ok {
		return
	}
	if text != "" {
		rc.add(rc.queued[0], text)
	}
	rc.queued = rc.queued[1:]
	if len(rc.queued) == 0 && rc.aheadKeys {
		rc.atPrompt, rc.typed, rc.byPrompt, rc.aheadKeys = true, 1, true, false
	}
}

func (rc *reconstructor) add(t uint64, text string) {
	off := time.Duration(t) * time.Microsecond
	rc.cmds = append(rc.cmds, Command{Time: rc.start.Add(off), Offset: off, Source: "screen", Text: text})
}

func parseSize(s string) (int, int, bool) {
	c, r, ok := strings.Cut(s, "x")
	cols, err1 := strconv.Atoi(c)
	rows, err2 := strconv.Atoi(r)
	return cols, rows, ok && err1 == nil && err2 == nil && cols > 0 && rows > 0 && cols <= 1000 && rows <= 1000
}

func (rc *reconstructor) key(b byte, t uint64) {
	defer func() { rc.outputSince = false }()
	switch {
	case rc.enterPending && rc.outputAfterEnter:
		// The program answered the Enter without echoing a newline:
		// the line was read with echo off (a password prompt), and
		// what is on the screen now is not what was typed. Drop it,
		// and anything typed ahead of it.
		rc.enterPending, rc.outputAfterEnter, rc.atPrompt, rc.typed = false, false, false, 0
		rc.queued, rc.aheadKeys, rc.byPrompt = nil, false, false
	case (rc.enterPending || len(rc.queued) > 0 || rc.aheadKeys) && !rc.outputSince:
		// Typed ahead, before any answer.
		if b == '\r' || b == '\n' {
			rc.queued, rc.aheadKeys = append(rc.queued, t), false
		} else if b >= ' ' || b == '\t' {
			rc.aheadKeys = true
		}
		return
	case len(rc.queued) > 0 || rc.aheadKeys:
		// Typed-ahead lines whose prompt never came (read by another
		// program, with echo off): drop them.
		rc.queued, rc.aheadKeys = nil, false
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
	case 0x03, 0x04:
		// Ctrl-C abandons the line; Ctrl-D ends input.
		rc.atPrompt, rc.typed = false, 0
	case 0x0c:
		// Ctrl-L redraws the prompt (and the line) at the top, perhaps
		// after the next key: the line is found by the prompt's text.
		if rc.promptText != "" {
			rc.atPrompt, rc.typed, rc.byPrompt = true, 1, true
		} else {
			rc.atPrompt, rc.typed = false, 0
		}
	default:
		if !rc.atPrompt {
			pos := rc.em.CursorPosition()
			rc.atPrompt, rc.promptX, rc.promptY = true, pos.X, pos.Y
			rc.em.ClearScrollback()
			rc.promptText = rc.rowText(pos.Y, 0, pos.X)
		}
		rc.typed++
	}
}

// lineText reads the command line from the prompt position to the end of
// the (possibly wrapped) line. Rows that scrolled off the top while it was
// typed are read back from the scrollback (emptied when typing started, so
// its length is how far the screen scrolled); the line continues past the
// cursor's row while a row is filled to its last column (the cursor may
// have been moved back into a wrapped line). Nothing echoed (a password
// prompt) reads as "".
func (rc *reconstructor) lineText() string {
	if rc.byPrompt {
		text, _ := rc.promptLine()
		return text
	}
	cur := rc.em.CursorPosition()
	w, h := rc.em.Width(), rc.em.Height()
	scrolled := rc.em.ScrollbackLen()
	y0 := rc.promptY - scrolled // virtual row: negative rows are in the scrollback
	x0 := rc.promptX
	if cur.Y < y0 { // cleared or moved above the prompt: read the cursor's row
		y0, x0 = cur.Y, 0
	}
	last := cur.Y
	for last+1 < h && rc.filled(w-1, last, scrolled) {
		last++
	}
	var sb strings.Builder
	for y := y0; y <= last; y++ {
		x := 0
		if y == y0 {
			x = x0
		}
		for ; x < w; x++ {
			sb.WriteString(rc.cellText(x, y, scrolled))
		}
	}
	return strings.TrimSpace(sb.String())
}

// filled reports whether cell x of virtual row y holds a character (a row
// filled to its last column wraps into the next).
func (rc *reconstructor) filled(x, y, scrolled int) bool {
	content, _, _ := rc.cell(x, y, scrolled)
	return content != "" && content != " "
}

// cellText is what cell x of virtual row y reads as: its content, a space
// when empty, nothing for the second half of a wide character.
func (rc *reconstructor) cellText(x, y, scrolled int) string {
	content, width, ok := rc.cell(x, y, scrolled)
	switch {
	case !ok:
		return " "
	case content == "" && width == 0:
		return ""
	case content == "":
		return " "
	}
	return content
}

// cell reads cell x of virtual row y: negative rows are in the scrollback.
func (rc *reconstructor) cell(x, y, scrolled int) (content string, width int, ok bool) {
	c := rc.em.ScrollbackCellAt(x, scrolled+y)
	if y >= 0 {
		c = rc.em.CellAt(x, y)
	}
	if c == nil {
		return "", 0, false
	}
	return c.Content, c.Width, true
}

// rowText is the text of screen row y from column x0 to x1.
func (rc *reconstructor) rowText(y, x0, x1 int) string {
	var sb strings.Builder
	for x := x0; x < x1; x++ {
		sb.WriteString(rc.cellText(x, y, 0))
	}
	return sb.String()
}

// promptLine reads the line the cursor is on (with the rows it wrapped
// from) after the prompt, for a line typed before its prompt was drawn:
// after promptText, or after the prompt's last mark ("$ ", "# ", "> ")
// when the prompt changed (a cd). ok is false when no prompt is there.
func (rc *reconstructor) promptLine() (text string, ok bool) {
	cur := rc.em.CursorPosition()
	w := rc.em.Width()
	y0 := cur.Y
	for y0 > 0 && rc.filled(w-1, y0-1, 0) {
		y0--
	}
	var sb strings.Builder
	for y := y0; y <= cur.Y; y++ {
		sb.WriteString(rc.rowText(y, 0, w))
	}
	line := sb.String()
	if rc.promptText != "" && strings.HasPrefix(line, rc.promptText) {
		return strings.TrimSpace(line[len(rc.promptText):]), true
	}
	mark := strings.TrimLeft(rc.promptText, " ")
	if len(mark) >= 2 {
		mark = mark[len(mark)-2:]
	}
	if mark == "$ " || mark == "# " || mark == "> " {
		// A prompt is one word ending in the mark, beginning like the
		// last one (output lines with "# " in them are not prompts).
		i := strings.Index(line, mark)
		if i > 0 && !strings.Contains(line[:i], " ") && len(rc.promptText) >= 3 && strings.HasPrefix(line, rc.promptText[:3]) {
			return strings.TrimSpace(line[i+len(mark):]), true
		}
	}
	return "", false
}
