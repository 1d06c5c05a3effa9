package cmdline

import (
	"strings"
	"testing"
)

// A Tracker holds an emulator only while a line is typed: not at the
// prompt before the first key, not while a command's output runs, not in
// a full-screen program; and lines after long output or a resize still
// come out whole.
func TestEmulatorOnlyWhileALineIsTyped(t *testing.T) {
	s := newScript(80, 24)
	defer s.tr.Close()
	held := func(want bool, when string) {
		t.Helper()
		if s.tr.Held() != want {
			t.Fatalf("%s: emulator held = %v, want %v", when, s.tr.Held(), want)
		}
	}
	s.out("Last login: today\r\n" + testPrompt)
	held(false, "at the first prompt")
	s.keys("l")
	held(true, "after the first key")
	s.out("l")
	s.typeEchoed("s -l\r")
	held(false, "after the Enter's echo")
	s.out(strings.Repeat("-rw-r--r-- 1 root root 123 Dec  1 05:43 some-file-name\r\n", 400) + testPrompt)
	held(false, "after long output")
	s.tr.Resize(40, 10)
	long := "echo " + strings.Repeat("abcdefghij", 9) + " end"
	s.typeEchoed(long + "\r")
	s.out("x\r\n" + testPrompt)
	s.out("\x1b[?1049h")
	s.keys("ihello\x1b:wq\r")
	held(false, "in vim")
	s.out("\x1b[?1049l" + testPrompt)
	s.typeEchoed("echo after vim\r")
	want := []string{"ls -l", long, "echo after vim"}
	if got := s.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("commands %q, want %q", got, want)
	}
}

// State reads the line being typed, as the screen shows it after tab
// completion and history recall.
func TestStateReadsTheLineOnTheScreen(t *testing.T) {
	s := newScript(80, 24)
	defer s.tr.Close()
	s.out(testPrompt)
	s.keys("rm -rf /tm")
	s.out("rm -rf /tm")
	if st := s.tr.State(); !st.Echoed || st.Line != "rm -rf /tm" || st.Pending || st.AltScreen {
		t.Fatalf("state %+v", st)
	}
	s.keys("\t")
	if st := s.tr.State(); st.Echoed {
		t.Fatalf("echoed before the completion arrived: %+v", st)
	}
	s.out("p/")
	if st := s.tr.State(); st.Line != "rm -rf /tmp/" {
		t.Fatalf("state after tab %+v", st)
	}
	s.keys("\x03")
	s.out("^C\r\n" + testPrompt)
	if st := s.tr.State(); st.AtPrompt || st.Line != "" || s.tr.Held() {
		t.Fatalf("state after Ctrl-C %+v", st)
	}
	s.keys("\x1b[A")
	s.out("rm -rf /tmp/x")
	if st := s.tr.State(); st.Line != "rm -rf /tmp/x" {
		t.Fatalf("state after history recall %+v", st)
	}
}

func TestTypedLine(t *testing.T) {
	cases := []struct {
		keys, want string
		ok         bool
	}{
		{"rm -rf /tmp/x", "rm -rf /tmp/x", true},
		{"rm -rf /tmp/yy\x7fx", "rm -rf /tmp/yx", true},
		{"echo x\x15rm -rf /", "rm -rf /", true},
		{"ls foo\x17rm", "ls rm", true},
		{"ls\x03rm -rf /", "rm -rf /", true},
		{"\x1b[200~true\rrm -rf /tmp/x\x1b[201~", "true\nrm -rf /tmp/x", true},
		{"rm -rf /tm\t", "", false},
		{"\x1b[A", "", false},
		{"\x12rm", "", false},
		{"echo \x1bb", "", false},
		{"caf\xc3\xa9\x7f", "caf", true},
	}
	for _, c := range cases {
		var k Typed
		for i := 0; i < len(c.keys); i++ {
			if k.Feed(c.keys[i]) {
				t.Fatalf("%q: Enter inside", c.keys)
			}
		}
		got, ok := k.Line()
		if got != c.want || ok != c.ok {
			t.Errorf("%q: line %q %v, want %q %v", c.keys, got, ok, c.want, c.ok)
		}
	}
	var k Typed
	enters := 0
	for _, b := range []byte("a\rb\n\x1b[200~c\rd\x1b[201~\re\x0f") {
		if k.Feed(b) {
			enters++
			k.Reset()
		}
	}
	if enters != 4 {
		t.Fatalf("%d Enters, want 4 (Ctrl-O runs a line too; none inside the paste)", enters)
	}
}

// FuzzTyped feeds keystrokes (from the client, untrusted) to the typed-line
// model: it must not panic, stays bounded, and a known line never holds
// a control character other than a pasted newline or tab.
func FuzzTyped(f *testing.F) {
	f.Add([]byte("rm -rf /tmp/x\r"))
	f.Add([]byte("\x1b[200~a\rb\x1b[201~\x7f\x15\x17\r"))
	f.Add([]byte("\x1b[1;5A\x1bOA\x1b\x1b[2"))
	f.Fuzz(func(t *testing.T, keys []byte) {
		var k Typed
		for _, b := range keys {
			if k.Feed(b) {
				k.Reset()
			}
		}
		line, ok := k.Line()
		if len(line) > maxTyped {
			t.Fatalf("line of %d bytes", len(line))
		}
		for _, r := range line {
			if ok && r < 0x20 && r != '\n' && r != '\t' {
				t.Fatalf("control %q in known line %q", r, line)
			}
		}
	})
}

// A line typed with echo off (stty -echo in a shell without line editing)
// is not read off the screen: what the screen shows after the prompt is the
// command's output. A line pasted whole before its echo still counts.
func TestEchoOffLineIsNotACommand(t *testing.T) {
	s := newScript(80, 24)
	defer s.tr.Close()
	s.out("$ ")
	for _, k := range "echo secret-output\r" {
		s.keys(string(k)) // no echo
	}
	s.out("secret-output\r\n$ ")
	s.keys("echo pasted\r")
	s.out("echo pasted\r\npasted\r\n$ ")
	if got := s.texts(); strings.Join(got, "|") != "echo pasted" {
		t.Fatalf("commands %q, want only the pasted line", got)
	}
}
