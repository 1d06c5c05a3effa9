package cmdline

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/vt"
)

// Command is one command line read off the screen.
type Command struct {
	Offset time.Duration // of the Enter that ran it, from the start of the session
	Text   string
}

// tailMax bounds the output a Tracker keeps between lines: enough for the
// prompt and the rows above it that a wrapped line or a multi-row prompt needs.
const tailMax = 2048

// Tracker reconstructs command lines from a session's output and keystrokes.
// It is not safe for concurrent use; the caller serialises Output, Input,
// Resize, State and Close.
type Tracker struct {
	cols, rows int
	emit       func(Command)

	em     *vt.Emulator // nil between lines
	tail   []byte       // the last output, replayed into a new emulator
	alt    bool         // the alternate screen is on (kept while em is nil)
	carry  [7]byte      // the end of the previous output, for sequences split across writes
	ncarry int

	atPrompt         bool   // a command line is being typed
	promptX, promptY int    // where typing started; the scrollback is emptied then
	typed            int    // keystrokes since the prompt
	enterAt          uint64 // time of a pressed Enter whose echo has not arrived
	enterPending     bool
	outputAfterEnter bool // output came after that Enter, without a newline

	// Typing ahead: keys that came after an Enter and before any answer
	// (a pasted block, a fast typist) belong to lines whose prompt is not
	// on the screen yet. Those lines are found by the prompt's text.
	promptText string   // the screen left of where typing started
	queued     []uint64 // times of typed-ahead Enters, oldest first
	aheadKeys  bool     // typed-ahead keys after the last queued Enter
	byPrompt   bool     // the current line starts after promptText
	// early: the line's first key came at the start of an empty row, after
	// a command's output and before the shell drew its prompt (typed
	// ahead of the prompt, not of an Enter). Where the shell had already
	// set its terminal raw, the prompt is drawn in front of the keys: the
	// line is read after the last prompt's text when its row has one.
	early       bool
	outputSince bool // output came since the last key

	// keys is the current line as its keystrokes say; echoed reports
	// output between the line's first key and its Enter. A line whose
	// keys were plain typing, with no output before its Enter, and whose
	// screen reading differs from those keys was typed with echo off: what
	// the screen shows is the command's output, not the command.
	keys   Typed
	echoed bool
	// emptied: the last key that changed the line was Ctrl-U (a user's, or
	// the gateway's cancel of a refused line): the line is empty, whatever
	// the screen shows after the prompt (the refusal notice, a redrawn
	// prompt), until another key adds to it.
	emptied bool
}

// New returns a Tracker for a cols×rows terminal; emit receives each command
// (from within Output, so it must not block).
func New(cols, rows int, emit func(Command)) *Tracker {
	if cols <= 0 || rows <= 0 {
		cols, rows = 80, 24
	}
	return &Tracker{cols: cols, rows: rows, emit: emit}
}

// Close returns the emulator, if one is held, to the pool.
func (t *Tracker) Close() {
	t.release()
	t.tail = nil
}

// Held reports whether the Tracker holds an emulator now (for tests and
// benchmarks of its memory).
func (t *Tracker) Held() bool { return t.em != nil }

// Resize applies a terminal size change.
func (t *Tracker) Resize(cols, rows int) {
	if cols <= 0 || rows <= 0 || cols > 1000 || rows > 1000 {
		return
	}
	t.cols, t.rows = cols, rows
	if t.em != nil {
		t.em.Resize(cols, rows)
	}
}

// Input applies keystrokes typed at time at (microseconds from the start).
func (t *Tracker) Input(p []byte, at uint64) {
	for _, b := range p {
		t.key(b, at)
	}
	t.releaseIfIdle()
}

// Output applies terminal output that arrived at time at; with an Enter
// pending, the command line is read just before the echoed newline, and
// typed-ahead lines at the newlines after theirs.
func (t *Tracker) Output(p []byte, at uint64) {
	t.keepTail(p)
	t.outputSince = t.outputSince || len(p) > 0
	t.echoed = t.echoed || (t.atPrompt && !t.enterPending && len(p) > 0)
	if t.em == nil {
		return
	}
	answered := false
	for t.enterPending || len(t.queued) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			answered = t.enterPending && len(p) > 0
			break
		}
		t.em.Write(p[:i])
		if t.enterPending {
			t.commit()
		} else {
			t.commitQueued()
		}
		t.em.Write(p[i : i+1])
		p = p[i+1:]
	}
	t.em.Write(p)
	if answered && !t.outputAfterEnter && !t.lateEcho() {
		t.outputAfterEnter = true
	}
	t.releaseIfIdle()
}

// lateEcho reports whether output after a pending Enter, with no newline, is
// the echo of the line itself arriving late (a loaded target's shell echoes
// a pasted line after its Enter was sent) rather than a program answering
// the Enter: the screen's line is a beginning of the line as typed.
func (t *Tracker) lateEcho() bool {
	typed, ok := t.keys.Line()
	if !ok {
		return false
	}
	text := t.lineText()
	if t.early {
		// A line typed before its prompt: the prompt is drawn after the
		// Enter, then the line after it.
		if _, ok := t.promptLine(); ok {
			return strings.HasPrefix(strings.TrimSpace(typed), text)
		}
	}
	return text != "" && strings.HasPrefix(strings.TrimSpace(typed), text)
}

// keepTail appends output to the tail, keeping the last tailMax bytes from
// the start of a row where it can, and follows the alternate screen.
func (t *Tracker) keepTail(p []byte) {
	if len(p) == 0 {
		return
	}
	t.followAlt(p)
	if len(p) >= tailMax {
		if cap(t.tail) < tailMax {
			t.tail = make([]byte, 0, tailMax)
		}
		t.tail = append(t.tail[:0], p[len(p)-tailMax:]...)
	} else {
		if over := len(t.tail) + len(p) - tailMax; over > 0 {
			n := copy(t.tail, t.tail[over:])
			t.tail = t.tail[:n]
		}
		if need := len(t.tail) + len(p); need > cap(t.tail) {
			// Grow in steps, never past tailMax: most sessions idle
			// with a prompt and a few rows.
			grown := make([]byte, len(t.tail), min(max(need, 2*cap(t.tail), 256), tailMax))
			copy(grown, t.tail)
			t.tail = grown
		}
		t.tail = append(t.tail, p...)
	}
	if len(t.tail) >= tailMax*3/4 {
		// Start at a row: a replay from the middle of a row or an escape
		// sequence would misplace the prompt.
		if i := bytes.IndexByte(t.tail, '\n'); i >= 0 && i < len(t.tail)-1 {
			n := copy(t.tail, t.tail[i+1:])
			t.tail = t.tail[:n]
		}
	}
}

// Alternate-screen switches (vim, less, top).
var (
	altOn  = [][]byte{[]byte("\x1b[?1049h"), []byte("\x1b[?1047h"), []byte("\x1b[?47h")}
	altOff = [][]byte{[]byte("\x1b[?1049l"), []byte("\x1b[?1047l"), []byte("\x1b[?47l")}
)

// followAlt updates the alternate-screen flag from output, including a
// switch split across two writes.
func (t *Tracker) followAlt(p []byte) {
	scan := p
	if t.ncarry > 0 {
		head := p
		if len(head) > 8 {
			head = head[:8]
		}
		scan = append(append(make([]byte, 0, t.ncarry+len(head)), t.carry[:t.ncarry]...), head...)
		t.altIn(scan)
		scan = p
	}
	t.altIn(scan)
	t.ncarry = copy(t.carry[:], p[max(0, len(p)-len(t.carry)):])
}

func (t *Tracker) altIn(p []byte) {
	on, off := -1, -1
	for _, s := range altOn {
		on = max(on, bytes.LastIndex(p, s))
	}
	for _, s := range altOff {
		off = max(off, bytes.LastIndex(p, s))
	}
	if on > off {
		t.alt = true
	} else if off > on {
		t.alt = false
	}
}

// acquire takes an emulator and replays the tail into it.
func (t *Tracker) acquire() {
	if t.em != nil {
		return
	}
	t.em = getEmulator(t.cols, t.rows)
	t.em.Write(t.tail)
	if t.alt && !t.em.IsAltScreen() {
		t.em.Write(altOn[0])
	}
}

// release returns the emulator to the pool, keeping what the next line
// needs (the alternate-screen flag; promptText is kept anyway).
func (t *Tracker) release() {
	if t.em == nil {
		return
	}
	t.alt = t.em.IsAltScreen()
	putEmulator(t.em)
	t.em = nil
}

// idle reports whether no line is being typed or waited for.
func (t *Tracker) idle() bool {
	return !t.atPrompt && !t.enterPending && len(t.queued) == 0 && !t.aheadKeys
}

func (t *Tracker) releaseIfIdle() {
	if t.em != nil && t.idle() {
		t.release()
	}
}

func (t *Tracker) altScreen() bool {
	if t.em != nil {
		return t.em.IsAltScreen()
	}
	return t.alt
}

// emulators are shared by every Tracker of the process: one is needed only
// while a line is typed, so a few serve thousands of sessions.
//
// An emulator is ~4.8 MiB, almost all of it a 4 MiB buffer the vt parser
// allocates for escape-sequence payloads whatever the terminal, and a new
// one costs 5.9-6.6 ms with the collections that allocation causes, against
// 0.19 ms to reset a pooled one (BenchmarkNewEmulator,
// BenchmarkPooledEmulator). So the pool follows demand: it keeps as many
// idle as were in use at once lately (between poolMin and poolMax), so a
// gateway where many people type at the same time does not make and drop
// one per line, and a trim every poolTrim lets the extra ones go once the
// burst has passed (one to two trims after it).
var emulators struct {
	sync.Mutex
	free  []*vt.Emulator
	inUse int         // handed out and not yet back
	peak  int         // most in use at once since the last trim
	trim  *time.Timer // armed while more than poolMin are idle
}

const (
	poolMin  = 4  // idle emulators always kept
	poolMax  = 32 // most kept idle after a burst (~150 MiB), until trimmed
	poolTrim = time.Minute
)

// scrollbackRows is the emulator's scrollback: it holds the start of a
// command line that wrapped and scrolled off the top of the screen.
const scrollbackRows = 256

func getEmulator(cols, rows int) *vt.Emulator {
	emulators.Lock()
	var em *vt.Emulator
	if n := len(emulators.free); n > 0 {
		em, emulators.free = emulators.free[n-1], emulators.free[:n-1]
	}
	emulators.inUse++
	emulators.peak = max(emulators.peak, emulators.inUse)
	emulators.Unlock()
	if em == nil {
		em = vt.NewEmulator(cols, rows)
		em.SetScrollbackSize(scrollbackRows)
		// The emulator answers terminal queries into a pipe; drain it so
		// it never blocks.
		go io.Copy(io.Discard, em)
		return em
	}
	// CAN and ST end any half-parsed sequence, RIS resets the rest.
	if em.IsAltScreen() {
		em.Write(altOff[0])
	}
	em.Write([]byte("\x18\x1b\\\x1bc"))
	em.ClearScrollback()
	em.Resize(cols, rows)
	return em
}

func putEmulator(em *vt.Emulator) {
	emulators.Lock()
	emulators.inUse--
	if len(emulators.free) < poolKeep() {
		emulators.free = append(emulators.free, em)
		em = nil
		if len(emulators.free) > poolMin && emulators.trim == nil {
			emulators.trim = time.AfterFunc(poolTrim, trimEmulators)
		}
	}
	emulators.Unlock()
	if em != nil {
		closeEmulator(em)
	}
}

// poolKeep is how many idle emulators the pool keeps now. Caller holds the
// lock.
func poolKeep() int {
	return max(poolMin, min(emulators.peak, poolMax))
}

// trimEmulators lets go of the idle emulators beyond what the last
// poolTrim's peak needs, and starts the next period.
func trimEmulators() {
	emulators.Lock()
	keep := max(poolMin, min(emulators.peak, poolMax)-emulators.inUse)
	var drop []*vt.Emulator
	if n := len(emulators.free); n > keep {
		drop = append(drop, emulators.free[keep:]...)
		clear(emulators.free[keep:])
		emulators.free = emulators.free[:keep]
	}
	emulators.peak = emulators.inUse
	emulators.trim = nil
	if len(emulators.free) > poolMin {
		emulators.trim = time.AfterFunc(poolTrim, trimEmulators)
	}
	emulators.Unlock()
	for _, em := range drop {
		closeEmulator(em)
	}
}

// closeEmulator ends the drain goroutine by closing the reply pipe directly:
// Emulator.Close writes a flag that Emulator.Read reads without a lock.
func closeEmulator(em *vt.Emulator) {
	if pw, ok := em.InputPipe().(*io.PipeWriter); ok {
		pw.Close()
	}
}

// State is what the Tracker knows of the line being typed.
type State struct {
	// Line is the command line on the screen after the prompt, when one is
	// being typed and no earlier Enter is waiting for its echo.
	Line string
	// AtPrompt reports that a line is being typed at a prompt.
	AtPrompt bool
	// Pending reports an earlier Enter (or a typed-ahead line) whose echo
	// has not arrived: the screen does not show the line being typed.
	Pending bool
	// AltScreen reports a full-screen program (vim, less, top).
	AltScreen bool
	// Echoed reports that output arrived after the last key.
	Echoed bool
	// Prompt is the text left of where the current (or last) line began.
	Prompt string
}

// State reads the line being typed.
func (t *Tracker) State() State {
	s := State{AtPrompt: t.atPrompt, Pending: t.enterPending || len(t.queued) > 0 || t.aheadKeys,
		AltScreen: t.altScreen(), Echoed: t.outputSince, Prompt: t.promptText}
	if s.AtPrompt && !s.Pending && t.em != nil {
		s.Line = t.lineText()
	}
	return s
}

func (t *Tracker) add(at uint64, text string) {
	if t.emit != nil {
		t.emit(Command{Offset: time.Duration(at) * time.Microsecond, Text: text})
	}
}
