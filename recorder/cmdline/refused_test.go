package cmdline

import (
	"strings"
	"testing"
)

// TestRefusedLineThenEmptyEnter: after the gateway empties a refused line
// on the target's editor (Ctrl-E Ctrl-U) and prints why, an Enter on that
// empty line runs nothing, so it is no command — whether the refused line
// was typed at its prompt or pasted ahead of it, and whether the shell
// redrew its prompt or not.
func TestRefusedLineThenEmptyEnter(t *testing.T) {
	const prompt = "rec$ "
	notice := "\r\ngatehouse: line not run: role guard denies the command \"rm -rf x\" (rule \"rm -rf\")\r\n"
	erase := strings.Repeat("\b", 8) + "\x1b[K"
	cases := map[string]func(s *screenScript){
		"typed": func(s *screenScript) {
			s.out(prompt)
			s.typeEchoed("rm -rf x")
			s.keys("\x05\x15")
			s.out(erase)
			s.out(notice + prompt) // read back from the recording (crash recovery), the notice is output
		},
		"typed, notice unseen": func(s *screenScript) {
			// The gateway's notice is not terminal output of the shell:
			// the tracker does not see it.
			s.out(prompt)
			s.typeEchoed("rm -rf x")
			s.keys("\x05\x15")
			s.out(erase)
		},
		"typed, no prompt redrawn": func(s *screenScript) {
			s.out(prompt)
			s.typeEchoed("rm -rf x")
			s.keys("\x05\x15")
			s.out(erase)
			s.out(notice) // as the recording holds it
		},
		"pasted ahead": func(s *screenScript) {
			s.out(prompt)
			s.keys("echo pasted-one\rrm -rf x")
			s.keys("\x05\x15")
			s.out("echo pasted-one\r\n")
			s.out("pasted-one\r\n")
			s.out(prompt + "rm -rf x")
			s.out(erase)
			s.out(notice) // as the recording holds it
		},
		"pasted ahead, cancel after the echo": func(s *screenScript) {
			s.out(prompt)
			s.keys("echo pasted-one\rrm -rf x")
			s.out("echo pasted-one\r\n")
			s.out("pasted-one\r\n")
			s.out(prompt + "rm -rf x")
			s.keys("\x05\x15")
			s.out(erase)
			s.out(notice) // as the recording holds it
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			s := newScript(100, 30)
			run(s)
			s.keys("\r")
			s.out("\r\n" + prompt)
			s.typeEchoed("echo next\r")
			got := strings.Join(s.texts(), "|")
			want := "echo next"
			if strings.HasPrefix(name, "pasted") {
				want = "echo pasted-one|echo next"
			}
			if got != want {
				t.Fatalf("commands %q, want %q", got, want)
			}
		})
	}
}

// TestPastedLineEchoedAfterItsEnter: on a loaded target the shell echoes a
// pasted line only after the gateway has sent its Enter, and the refused
// line pasted after it (with the gateway's Ctrl-E Ctrl-U cancel) reaches
// the target before that echo's newline. The first line still ran and is a
// command: the keys after its Enter belong to the next line, and the late
// echo is not a program answering the Enter. The screen and keys are those
// of a failed TestInteractiveLineRules run on a loaded CI machine.
func TestPastedLineEchoedAfterItsEnter(t *testing.T) {
	const prompt = "\x1b[?2004hrec$ "
	const refused = "rm -rf /tmp/victim/xdir-unique"
	cases := map[string]func(s *screenScript){
		"echo after the Enter": func(s *screenScript) {
			s.keys("echo pasted-one")
			s.keys("\r")
			s.out("echo pasted-one")
			s.keys(refused)
			s.keys("\x05\x15")
			s.out("\r\n\x1b[?2004l\r")
		},
		"echo split by the Enter": func(s *screenScript) {
			s.keys("echo pasted-one")
			s.out("echo pasted-o")
			s.keys("\r")
			s.out("ne")
			s.keys(refused)
			s.keys("\x05\x15")
			s.out("\r\n\x1b[?2004l\r")
		},
		"echo before the Enter": func(s *screenScript) {
			s.keys("echo pasted-one")
			s.out("echo pasted-one")
			s.keys("\r")
			s.keys(refused)
			s.keys("\x05\x15")
			s.out("\r\n\x1b[?2004l\r")
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			s := newScript(80, 24)
			s.out("warn-me now\r\n" + prompt)
			run(s)
			// The cancel reached the tty while bash ran echo: the tty
			// echoed ^E and erased it; bash then drew the held line.
			s.out("pasted-one\r\n^E\b \b\b \b" + prompt + refused)
			s.keys("\x03")
			s.out("^C\x1b[?2004l\r\x1b[?2004h\x1b[?2004l\r\r\n" + prompt)
			s.typeEchoed("echo ok-$((40+2))\r")
			if got, want := strings.Join(s.texts(), "|"), "echo pasted-one|echo ok-$((40+2))"; got != want {
				t.Fatalf("commands %q, want %q", got, want)
			}
		})
	}
}
