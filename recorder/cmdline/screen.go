package cmdline

import "strings"

func (t *Tracker) commit() {
	text := t.lineText()
	if typed, ok := t.keys.Line(); ok && !t.echoed && !t.byPrompt && strings.TrimSpace(typed) != text {
		text = "" // typed with echo off: the screen shows output
	}
	if t.emptied {
		text = "" // Ctrl-U emptied the line and nothing was typed after it
	}
	if text != "" {
		t.add(t.enterAt, text)
	}
	t.keys.Reset()
	t.emptied = false
	t.enterPending, t.outputAfterEnter, t.atPrompt, t.typed, t.byPrompt, t.early = false, false, false, 0, false, false
	if t.aheadKeys && len(t.queued) == 0 {
		// A line was begun ahead: it goes on after the next prompt.
		t.atPrompt, t.typed, t.byPrompt, t.aheadKeys = true, 1, true, false
	}
}

// commitQueued reads the oldest typed-ahead line at a newline, if the
// cursor's line starts with the prompt (other newlines are output).
func (t *Tracker) commitQueued() {
	t.byPrompt = true
	text, ok := t.promptLine()
	t.byPrompt = false
	if !ok {
		return
	}
	if text != "" {
		t.add(t.queued[0], text)
	}
	t.queued = t.queued[1:]
	if len(t.queued) == 0 && t.aheadKeys {
		t.atPrompt, t.typed, t.byPrompt, t.aheadKeys = true, 1, true, false
	}
}

func (t *Tracker) key(b byte, at uint64) {
	defer func() { t.outputSince = false }()
	switch {
	case t.enterPending && t.outputAfterEnter:
		// The program answered the Enter without echoing a newline:
		// the line was read with echo off (a password prompt), and
		// what is on the screen now is not what was typed. Drop it,
		// and anything typed ahead of it.
		t.enterPending, t.outputAfterEnter, t.atPrompt, t.typed = false, false, false, 0
		t.queued, t.aheadKeys, t.byPrompt = nil, false, false
	case t.enterPending || (len(t.queued) > 0 || t.aheadKeys) && !t.outputSince:
		// Typed ahead, before any answer: keys after an Enter whose
		// newline has not been echoed belong to the next line, even when
		// the echo of the line itself came after the Enter (a Ctrl-U
		// among them, such as the gateway's cancel of a refused line
		// pasted after it, does not empty the line already entered).
		switch {
		case b == '\r' || b == '\n' || b == 0x0f:
			t.queued, t.aheadKeys = append(t.queued, at), false
		case b == 0x03 || b == 0x15:
			// Ctrl-C or Ctrl-U drops the line typed ahead.
			t.aheadKeys = false
		case b >= ' ' || b == '\t':
			t.aheadKeys = true
		}
		return
	case len(t.queued) > 0 || t.aheadKeys:
		// Typed-ahead lines whose prompt never came (read by another
		// program, with echo off): drop them.
		t.queued, t.aheadKeys = nil, false
	}
	if t.altScreen() {
		// Full-screen programs (vim, less, top): not a command line.
		t.atPrompt = false
		return
	}
	switch b {
	case '\r', '\n', 0x0f: // Enter, Ctrl-J, Ctrl-O (operate-and-get-next)
		// The line is read when the shell echoes the newline: keys often
		// arrive in one chunk (a paste, a fast typist) before their echo.
		if t.atPrompt && t.typed > 0 && !t.enterPending {
			if t.early && !t.echoed {
				// Typed ahead of its prompt, nothing shown yet: the
				// terminal may echo it now (still in cooked mode) and
				// the shell again after its prompt, or only the shell.
				// Read it at the prompt, as a line typed ahead of an
				// Enter is.
				t.queued = append(t.queued, at)
				t.atPrompt, t.typed, t.early = false, 0, false
				t.keys.Reset()
				return
			}
			t.enterPending, t.enterAt = true, at
			return
		}
		t.atPrompt, t.typed = false, 0
	case 0x03, 0x04:
		// Ctrl-C abandons the line; Ctrl-D ends input.
		t.atPrompt, t.typed, t.emptied = false, 0, false
	case 0x0c:
		// Ctrl-L redraws the prompt (and the line) at the top, perhaps
		// after the next key: the line is found by the prompt's text.
		if t.promptText != "" {
			t.acquire()
			t.atPrompt, t.typed, t.byPrompt = true, 1, true
		} else {
			t.atPrompt, t.typed = false, 0
		}
	default:
		if !t.atPrompt {
			t.acquire()
			t.keys.Reset()
			t.echoed = false
			pos := t.em.CursorPosition()
			t.atPrompt, t.promptX, t.promptY = true, pos.X, pos.Y
			t.em.ClearScrollback()
			// Nothing left of the cursor after a prompt was seen: the
			// prompt may not be drawn yet; keep the last one's text.
			left := t.rowText(pos.Y, 0, pos.X)
			t.early = strings.TrimSpace(left) == "" && t.promptText != ""
			if !t.early {
				t.promptText = left
			}
		}
		t.typed++
		t.keys.Feed(b)
		switch b {
		case 0x15:
			t.emptied = true
		case 0x05, 0x0c: // Ctrl-E, Ctrl-L: the line is unchanged
		default:
			t.emptied = false
		}
		if line, ok := t.keys.Line(); ok && line == "" {
			t.echoed = false // the line was emptied (Ctrl-U): it starts again
		}
	}
}

// lineText reads the command line from the prompt position to the end of
// the (possibly wrapped) line. Rows that scrolled off the top while it was
// typed are read back from the scrollback (emptied when typing started, so
// its length is how far the screen scrolled); the line continues past the
// cursor's row while a row is filled to its last column (the cursor may
// have been moved back into a wrapped line). Nothing echoed (a password
// prompt) reads as "".
func (t *Tracker) lineText() string {
	if t.byPrompt {
		text, _ := t.promptLine()
		return text
	}
	if t.early {
		// Keys that reached a shell in raw mode before its prompt was
		// drawn are echoed after it, on the prompt's row; keys echoed by
		// the terminal itself (still in cooked mode) are on their own row.
		if text, ok := t.promptLine(); ok {
			return text
		}
	}
	cur := t.em.CursorPosition()
	w, h := t.em.Width(), t.em.Height()
	scrolled := t.em.ScrollbackLen()
	y0 := t.promptY - scrolled // virtual row: negative rows are in the scrollback
	x0 := t.promptX
	if cur.Y < y0 { // cleared or moved above the prompt: read the cursor's row
		y0, x0 = cur.Y, 0
	}
	last := cur.Y
	for last+1 < h && t.filled(w-1, last, scrolled) {
		last++
	}
	var sb strings.Builder
	for y := y0; y <= last; y++ {
		x := 0
		if y == y0 {
			x = x0
		}
		for ; x < w; x++ {
			sb.WriteString(t.cellText(x, y, scrolled))
		}
	}
	return strings.TrimSpace(sb.String())
}

// filled reports whether cell x of virtual row y holds a character (a row
// filled to its last column wraps into the next).
func (t *Tracker) filled(x, y, scrolled int) bool {
	content, _, _ := t.cell(x, y, scrolled)
	return content != "" && content != " "
}

// cellText is what cell x of virtual row y reads as: its content, a space
// when empty, nothing for the second half of a wide character.
func (t *Tracker) cellText(x, y, scrolled int) string {
	content, width, ok := t.cell(x, y, scrolled)
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
func (t *Tracker) cell(x, y, scrolled int) (content string, width int, ok bool) {
	c := t.em.ScrollbackCellAt(x, scrolled+y)
	if y >= 0 {
		c = t.em.CellAt(x, y)
	}
	if c == nil {
		return "", 0, false
	}
	return c.Content, c.Width, true
}

// rowText is the text of screen row y from column x0 to x1.
func (t *Tracker) rowText(y, x0, x1 int) string {
	var sb strings.Builder
	for x := x0; x < x1; x++ {
		sb.WriteString(t.cellText(x, y, 0))
	}
	return sb.String()
}

// promptLine reads the line the cursor is on (with the rows it wrapped
// from) after the prompt, for a line typed before its prompt was drawn:
// after promptText, or after the prompt's last mark ("$ ", "# ", "> ")
// when the prompt changed (a cd). ok is false when no prompt is there.
func (t *Tracker) promptLine() (text string, ok bool) {
	cur := t.em.CursorPosition()
	w := t.em.Width()
	y0 := cur.Y
	for y0 > 0 && t.filled(w-1, y0-1, 0) {
		y0--
	}
	var sb strings.Builder
	for y := y0; y <= cur.Y; y++ {
		sb.WriteString(t.rowText(y, 0, w))
	}
	line := sb.String()
	if t.promptText != "" && strings.HasPrefix(line, t.promptText) {
		return strings.TrimSpace(line[len(t.promptText):]), true
	}
	mark := strings.TrimLeft(t.promptText, " ")
	if len(mark) >= 2 {
		mark = mark[len(mark)-2:]
	}
	if mark == "$ " || mark == "# " || mark == "> " {
		// A prompt is one word ending in the mark, beginning like the
		// last one (output lines with "# " in them are not prompts).
		i := strings.Index(line, mark)
		if i > 0 && !strings.Contains(line[:i], " ") && len(t.promptText) >= 3 && strings.HasPrefix(line, t.promptText[:3]) {
			return strings.TrimSpace(line[i+len(mark):]), true
		}
	}
	return "", false
}
