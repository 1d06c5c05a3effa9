package target

import (
	"archive/tar"
	"bytes"
	"io"
	"log/slog"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzDockerSessionRequest feeds arbitrary payloads, as relayed from an SSH
// client, to the container session's request parser: it must never panic,
// and a pty-req it accepts must carry exactly the parsed size.
func FuzzDockerSessionRequest(f *testing.F) {
	f.Add("pty-req", ssh.Marshal(dockerPTY{Term: "xterm", Cols: 80, Rows: 24}))
	f.Add("window-change", ssh.Marshal(struct{ Cols, Rows, W, H uint32 }{100, 40, 0, 0}))
	f.Add("env", ssh.Marshal(struct{ Name, Value string }{"LANG", "C.UTF-8"}))
	f.Add("subsystem", ssh.Marshal(struct{ Value string }{"sftp"}))
	f.Add("subsystem", ssh.Marshal(struct{ Value string }{"netconf"}))
	f.Add("pty-req", []byte{0, 0, 0, 9, 'x'})
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		if name != "pty-req" && name != "window-change" && name != "env" && name != "subsystem" && name != "signal" {
			return // shell and exec reach the engine; covered by the Docker tests
		}
		d := &dockerConn{login: "app", opts: DockerOptions{Logger: slog.New(slog.DiscardHandler)},
			sessions: map[*dockerSession]struct{}{}, done: make(chan struct{})}
		s := newDockerSession(d)
		defer s.Close()
		ok, _ := s.SendRequest(name, true, payload)
		if name == "pty-req" && ok {
			var p dockerPTY
			if ssh.Unmarshal(payload, &p) != nil || s.pty == nil || s.pty.Cols != p.Cols || s.pty.Rows != p.Rows {
				t.Fatalf("accepted pty-req %x stored %+v", payload, s.pty)
			}
		}
		if name == "subsystem" && ok {
			t.Fatal("sftp accepted for a non-root login")
		}
	})
}

// FuzzReadSingleFile parses archives as the Engine's archive API returns
// them: never a panic, never more than maxSFTPFile, and a well-formed
// one-file archive yields its content.
func FuzzReadSingleFile(f *testing.F) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
	tw.Write([]byte("hello"))
	tw.Close()
	f.Add(b.Bytes())
	f.Add([]byte("not a tar archive"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := readSingleFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		if r.Size() > maxSFTPFile {
			t.Fatalf("%d bytes accepted", r.Size())
		}
		io.Copy(io.Discard, r)
	})
}
