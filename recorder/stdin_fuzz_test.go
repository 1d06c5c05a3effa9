package recorder

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzStdinLines feeds arbitrary input (what a client sends a shell) to the
// stdin command lister and the shell classifier: no panic, every command is
// one trimmed, valid UTF-8 line of bounded length, never a comment.
func FuzzStdinLines(f *testing.F) {
	f.Add([]byte("#!/bin/sh\nset -e\n\nsystemctl restart nginx\n"), "bash")
	f.Add([]byte("echo a\\\n b\r\n\xff\xfe\n   # c\n"), "/bin/sh -s")
	f.Fuzz(func(t *testing.T, input []byte, command string) {
		ShellReadsStdin(command)
		sl := stdinLines{start: time.Unix(0, 0)}
		half := len(input) / 2
		sl.event(castEvent{Type: 'i', T: 1, Data: input[:half]})
		sl.event(castEvent{Type: 'o', T: 2, Data: input})
		sl.event(castEvent{Type: 'i', T: 3, Data: input[half:]})
		sl.flush(sl.last)
		if len(sl.cmds) > maxStdinCommands {
			t.Fatalf("%d commands", len(sl.cmds))
		}
		for _, c := range sl.cmds {
			if c.Text == "" || strings.ContainsRune(c.Text, '\n') || strings.HasPrefix(c.Text, "#") ||
				!utf8.ValidString(c.Text) || len(c.Text) > 3*maxStdinLine || c.Source != "stdin" {
				t.Fatalf("bad command %q", c.Text)
			}
		}
	})
}
