package cmdline

import "unicode/utf8"

// maxTyped bounds the line kept from keystrokes (a longer one is Unknown).
const maxTyped = 16 << 10

// Typed is the line being typed as the keystrokes alone say: printable text,
// Backspace, Ctrl-U, Ctrl-W, Ctrl-C, and bracketed paste (whose newlines are
// part of the line, as readline keeps them). Any other key that edits the
// line — arrows, Tab, Ctrl-R, Ctrl-A, history — makes it unknown: only the
// screen can say what the line is then. The zero value is an empty line.
type Typed struct {
	buf     []byte
	unknown bool
	paste   bool   // inside a bracketed paste
	esc     []byte // an escape sequence being read
}

// Feed applies one key and reports whether it is a key that submits the
// line (outside a bracketed paste): Enter, Ctrl-J or Ctrl-O. After an Enter the caller decides and
// calls Reset.
func (k *Typed) Feed(b byte) (enter bool) {
	if k.esc != nil {
		k.escape(b)
		return false
	}
	switch {
	case b == 0x1b:
		k.esc = append(make([]byte, 0, 8), b)
	case k.paste && (b == '\r' || b == '\n'):
		k.add('\n')
	case k.paste && (b >= 0x20 || b == '\t'):
		k.add(b)
	case k.paste:
		k.unknown = true
	case b == '\r' || b == '\n' || b == 0x0f:
		// Enter, Ctrl-J, and Ctrl-O (bash's operate-and-get-next runs
		// the line too).
		return true
	case b == 0x7f || b == 0x08:
		_, n := utf8.DecodeLastRune(k.buf)
		k.buf = k.buf[:len(k.buf)-n]
	case b == 0x15: // Ctrl-U: the cursor is at the end while the line is known
		k.buf = k.buf[:0]
	case b == 0x17: // Ctrl-W: the word before the cursor
		i := len(k.buf)
		for i > 0 && k.buf[i-1] == ' ' {
			i--
		}
		for i > 0 && k.buf[i-1] != ' ' {
			i--
		}
		k.buf = k.buf[:i]
	case b == 0x03: // Ctrl-C abandons the line
		k.Reset()
	case b == 0x0c || b == 0x05 || b == 0x04 && len(k.buf) == 0:
		// Ctrl-L redraws; Ctrl-E goes to the end, where the cursor is while
		// the line is known; Ctrl-D on an empty line ends input.
	case b < 0x20:
		k.unknown = true
	default:
		k.add(b)
	}
	return false
}

// escape reads an escape sequence: the bracketed-paste brackets are kept
// track of, anything else (arrows, Alt-keys) makes the line unknown.
func (k *Typed) escape(b byte) {
	k.esc = append(k.esc, b)
	switch {
	case len(k.esc) == 2 && b != '[':
		k.esc, k.unknown = nil, true
	case len(k.esc) > 2 && b >= 0x40 && b <= 0x7e, len(k.esc) > 16:
		switch string(k.esc) {
		case "\x1b[200~":
			k.paste = true
		case "\x1b[201~":
			k.paste = false
		default:
			k.unknown = true
		}
		k.esc = nil
	}
}

func (k *Typed) add(b byte) {
	if len(k.buf) >= maxTyped {
		k.unknown = true
		return
	}
	k.buf = append(k.buf, b)
}

// Line returns the line typed so far; ok is false when keys were typed that
// only the screen can interpret.
func (k *Typed) Line() (line string, ok bool) {
	if k.unknown || k.esc != nil {
		return "", false
	}
	return string(k.buf), true
}

// Reset starts a new line.
func (k *Typed) Reset() {
	if cap(k.buf) > 1024 {
		k.buf = nil
	}
	k.buf, k.unknown, k.paste, k.esc = k.buf[:0], false, false, nil
}
