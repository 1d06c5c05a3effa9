package cmdline

import (
	"strings"
	"testing"
)

// screenScript drives a Tracker like a terminal session: keys typed one
// event each and echoed the way a shell echoes them, output, and several
// keys in one event (typed ahead, pasted).
type screenScript struct {
	tr   *Tracker
	t    uint64
	cmds []Command
}

func newScript(cols, rows int) *screenScript {
	s := &screenScript{}
	s.tr = New(cols, rows, func(c Command) { s.cmds = append(s.cmds, c) })
	return s
}

func (s *screenScript) out(p string) {
	s.t++
	s.tr.Output([]byte(p), s.t)
}

func (s *screenScript) keys(p string) {
	s.t++
	s.tr.Input([]byte(p), s.t)
}

// typeEchoed types line a key at a time, each echoed ("\r" as "\r\n").
func (s *screenScript) typeEchoed(line string) {
	for i := 0; i < len(line); i++ {
		s.keys(line[i : i+1])
		if line[i] == '\r' {
			s.out("\r\n")
		} else {
			s.out(line[i : i+1])
		}
	}
}

func (s *screenScript) texts() []string {
	var out []string
	for _, c := range s.cmds {
		out = append(out, c.Text)
	}
	return out
}

const testPrompt = "root@vm:~# "

// TestReconstructScreenCases covers what the fidelity corpus in bench/
// found missed: a command wrapped past the width at the bottom of the
// screen (its start scrolls off), lines pasted before their prompt, a line
// read with echo off followed by the next prompt, and Ctrl-L answered
// after the next key.
func TestReconstructScreenCases(t *testing.T) {
	long := "echo " + strings.Repeat("0123456789", 14) + " end"
	cases := []struct {
		name   string
		script func(s *screenScript)
		want   []string
		secret string
	}{
		{"wrapped at the bottom of the screen", func(s *screenScript) {
			s.out(strings.Repeat("line\r\n", 30) + testPrompt)
			s.typeEchoed(long + "\r")
			s.out(long[5:] + "\r\n" + testPrompt)
			s.typeEchoed("echo short\r")
		}, []string{long, "echo short"}, ""},
		{"pasted lines typed ahead of their prompts", func(s *screenScript) {
			s.out(testPrompt)
			s.keys("echo p1\recho p2\recho p3\r")
			s.out("echo p1\r\np1\r\n" + testPrompt + "echo p2\r\np2\r\n# not a prompt\r\n" + testPrompt + "echo p3\r\np3\r\n" + testPrompt)
			s.typeEchoed("echo after\r")
		}, []string{"echo p1", "echo p2", "echo p3", "echo after"}, ""},
		{"password read with echo off", func(s *screenScript) {
			s.out(testPrompt)
			s.typeEchoed("read -s pw\r")
			s.out("Password: ")
			for _, k := range "hunter2-secret\r" {
				s.keys(string(k)) // not echoed
			}
			s.out("\r\n" + testPrompt)
			s.typeEchoed("echo done\r")
		}, []string{"read -s pw", "echo done"}, "hunter2"},
		{"password typed ahead of its prompt", func(s *screenScript) {
			s.out(testPrompt)
			s.keys("sudo -k true\rhunter2-secret\r")
			s.out("sudo -k true\r\n[sudo] password for root: ")
			s.out("\r\n" + testPrompt)
			s.typeEchoed("echo done\r")
		}, []string{"sudo -k true", "echo done"}, "hunter2"},
		{"ctrl-l redrawn after the next key", func(s *screenScript) {
			s.out(strings.Repeat("x\r\n", 5) + testPrompt)
			s.typeEchoed("echo one\r")
			s.out("one\r\n" + testPrompt)
			s.keys("\x0c")
			s.keys("e")
			s.out("\x1b[H\x1b[2J" + testPrompt + "e")
			s.typeEchoed("cho after clear\r")
		}, []string{"echo one", "echo after clear"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newScript(80, 24)
			defer s.tr.Close()
			c.script(s)
			got := s.texts()
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("commands %q, want %q", got, c.want)
			}
			for _, g := range got {
				if c.secret != "" && strings.Contains(g, c.secret) {
					t.Errorf("secret captured in %q", g)
				}
			}
		})
	}
}

// FuzzReconstruct feeds a session's output and keystrokes (both come from
// the target and the client, untrusted) to a Tracker: it must not panic or
// hang, never returns an empty command, and holds no emulator once no line
// is being typed. The input is split into events at 0x00 bytes; an event
// starting with 'i' is keys, 'r' a resize, anything else output.
func FuzzReconstruct(f *testing.F) {
	f.Add([]byte("o" + testPrompt + "\x00iecho a\recho b\r\x00oecho a\r\na\r\n" + testPrompt + "echo b\r\n"))
	f.Add([]byte("o" + strings.Repeat("x\r\n", 30) + testPrompt + "\x00i" + strings.Repeat("y", 200) + "\r\x00o" + strings.Repeat("y", 200) + "\r\n"))
	f.Add([]byte("o\x1b[?1049h\x00iq\x00o\x1b[?1049l\x00i\x0c\x00o\x1b[H\x1b[2J# \x00r3x2\x00ils\r\x00o\x1b[3Jls\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var cmds []Command
		tr := New(20, 5, func(c Command) { cmds = append(cmds, c) })
		defer tr.Close()
		for i, ev := range strings.Split(string(data), "\x00") {
			if ev == "" {
				continue
			}
			switch ev[0] {
			case 'i':
				tr.Input([]byte(ev[1:]), uint64(i))
			case 'r':
				if c, r, ok := strings.Cut(ev[1:], "x"); ok && len(c) == 1 && len(r) == 1 {
					tr.Resize(int(c[0]-'0'), int(r[0]-'0'))
				}
			default:
				tr.Output([]byte(ev[1:]), uint64(i))
			}
			_ = tr.State()
			if tr.Held() && tr.idle() {
				t.Fatalf("emulator held with no line typed after event %d", i)
			}
		}
		for _, c := range cmds {
			if c.Text == "" {
				t.Fatalf("empty command in %q", cmds)
			}
		}
	})
}
