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
