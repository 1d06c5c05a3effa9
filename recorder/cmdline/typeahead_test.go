package cmdline

import (
	"strings"
	"testing"
)

// A line typed after a command's output and before bash drew its next
// prompt. These are the byte orders bash 5.2 under a pty produced (captured
// with creack/pty; the shell's writes slowed with strace's delay injection
// to open each window): "k" is keys, "o" output, in the order the gateway
// sees them. Before the prompt the terminal is either still in cooked mode
// (the kernel echoes the keys at once, and readline shows them again after
// its prompt) or already raw (readline shows them after its prompt only).
func TestTypeAheadOfThePrompt(t *testing.T) {
	const (
		on  = "\x1b[?2004h" // readline's bracketed paste on: the terminal is raw
		off = "\x1b[?2004l\r"
		ps  = "root@vm:~# "
	)
	first := []string{"o" + on, "o" + ps, "ksleep 0.2; echo a\r", "osleep 0.2; echo a", "o\r\n", "o" + off}
	cases := []struct {
		name   string
		events []string
		want   []string
		secret string
	}{
		{"raw: shown after the prompt only", []string{
			"oa\r\n", "kecho b\r", "o" + on, "o" + ps, "oecho b", "o\r\n", "o" + off, "ob\r\n", "o" + on, "o" + ps,
		}, []string{"echo b"}, ""},
		{"cooked: echoed at once, then after the prompt", []string{
			"oa\r\n", "kecho b\r", "oecho b\r\n", "o" + on, "o" + ps, "oecho b", "o\r\n", "o" + off, "ob\r\n", "o" + on, "o" + ps,
		}, []string{"echo b"}, ""},
		{"cooked: typed while the command ran", []string{
			"kecho b\r", "oecho b\r\n", "oa\r\n", "o" + on + ps + "echo b\r\n" + off + "b\r\n" + on + ps,
		}, []string{"echo b"}, ""},
		{"raw: two lines", []string{
			"oa\r\n", "kecho b\recho c\r", "o" + on, "o" + ps, "oecho b", "o\r\n", "o" + off, "ob\r\n",
			"o" + on, "o" + ps, "oecho c", "o\r\n", "o" + off, "oc\r\n", "o" + on, "o" + ps,
		}, []string{"echo b", "echo c"}, ""},
		{"cooked: two lines", []string{
			"oa\r\n", "kecho b\recho c\r", "oecho b\r\necho c\r\n", "o" + on, "o" + ps, "oecho b", "o\r\n", "o" + off, "ob\r\n",
			"o" + on, "o" + ps, "oecho c", "o\r\n", "o" + off, "oc\r\n", "o" + on, "o" + ps,
		}, []string{"echo b", "echo c"}, ""},
		{"cooked: two lines while the command ran", []string{
			"kecho b\recho c\r", "oecho b\r\necho c\r\n",
			"oa\r\n" + on + ps + "echo b\r\n" + off + "b\r\n" + on + ps + "echo c\r\n" + off + "c\r\n" + on + ps,
		}, []string{"echo b", "echo c"}, ""},
		{"cooked: one line ahead, the next typed once it ran", []string{
			"oa\r\n", "kecho b\r", "oecho b\r\n", "o" + on + ps + "echo b\r\n" + off, "kecho c\r",
			"oecho c\r\n", "ob\r\n", "o" + on + ps + "echo c\r\n" + off + "c\r\n" + on + ps,
		}, []string{"echo b", "echo c"}, ""},
		{"cooked: typed key by key while the command ran", append(append(
			keyByKey("echo b\r"), keyByKey("echo c\r")...),
			"oa\r\n", "o"+on+ps, "oecho b\r\n"+off, "ob\r\n"+on+ps+"echo c\r\n"+off+"c\r\n", "o"+on+ps,
		), []string{"echo b", "echo c"}, ""},
		{"raw: typed key by key, the prompt drawn after the Enter", []string{
			"oa\r\n", "ke", "kc", "kh", "ko", "o" + on, "k ", "kb", "k\r", "o" + ps, "oecho b", "o\r\n", "o" + off, "ob\r\n", "o" + on, "o" + ps,
		}, []string{"echo b"}, ""},
		{"raw: typed key by key, the prompt drawn between the keys", []string{
			"oa\r\n", "ke", "kc", "o" + on + ps + "ec", "kh", "oh", "ko", "oo", "k ", "o ", "kb", "ob", "k\r", "o\r\n" + off, "ob\r\n", "o" + on + ps,
		}, []string{"echo b"}, ""},
		{"a password typed while the command before its no-echo prompt ran", []string{
			"khunter2-secret\r", "ohunter2-secret\r\n", "ogot-14\r\n" + on + ps,
			"kecho done\r", "oecho done\r\n" + off + "done\r\n" + on + ps,
		}, []string{"echo done"}, "hunter2"},
		{"a password typed before its no-echo prompt", []string{
			"oa\r\n", "khunter2-secret\r", "oPassword: ", "o\r\n", "ogot-14\r\n", "o" + on, "o" + ps,
			"kecho done\r", "oecho done\r\n" + off + "done\r\n" + on + ps,
		}, []string{"echo done"}, "hunter2"},
		{"a password typed before its no-echo prompt, the next line with it", []string{
			"oa\r\n", "khunter2-secret\recho done\r", "oPassword: ", "o\r\n", "ogot-14\r\n", "o" + on, "o" + ps,
			"oecho done\r\n" + off + "done\r\n" + on + ps,
		}, []string{"echo done"}, "hunter2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			tr := New(100, 30, func(c Command) { got = append(got, c.Text) })
			defer tr.Close()
			for i, ev := range append(append([]string{}, first...), c.events...) {
				if ev[0] == 'k' {
					tr.Input([]byte(ev[1:]), uint64(i))
				} else {
					tr.Output([]byte(ev[1:]), uint64(i))
				}
			}
			want := append([]string{"sleep 0.2; echo a"}, c.want...)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("commands %q, want %q", got, want)
			}
			for _, g := range got {
				if c.secret != "" && strings.Contains(g, c.secret) {
					t.Errorf("secret captured in %q", g)
				}
			}
			if tr.Held() && !strings.Contains(c.name, "the next line with it") {
				// (There the shell read one of the two queued lines: the
				// other waits for a prompt until the next key drops it.)
				t.Errorf("emulator held at the prompt")
			}
		})
	}
}

// keyByKey is line typed a key at a time, each echoed by the terminal
// ("\r" as "\r\n").
func keyByKey(line string) []string {
	var evs []string
	for i := 0; i < len(line); i++ {
		evs = append(evs, "k"+line[i:i+1])
		if line[i] == '\r' {
			evs = append(evs, "o\r\n")
		} else {
			evs = append(evs, "o"+line[i:i+1])
		}
	}
	return evs
}
