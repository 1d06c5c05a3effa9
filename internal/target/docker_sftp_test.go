package target

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

type channelWriter struct{ ssh.Channel }

func (w channelWriter) Close() error { return w.CloseWrite() }

func sftpSession(t *testing.T, c Conn) (*sftp.Client, <-chan *ssh.Request) {
	t.Helper()
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Value string }{"sftp"})); !ok {
		t.Fatal("sftp subsystem refused for root")
	}
	cl, err := sftp.NewClientPipe(ch, channelWriter{ch})
	if err != nil {
		t.Fatal(err)
	}
	return cl, reqs
}

func TestDockerSFTP(t *testing.T) {
	d := testenv.RequireDocker(t)
	name := fmt.Sprintf("gh-sftp-%d", time.Now().UnixNano())
	d.RunContainer(t, name, nil)
	c := dial(t, d, name, "root")
	cl, reqs := sftpSession(t, c)

	data := make([]byte, 5<<20)
	rand.Read(data)
	if err := cl.Mkdir("/up"); err != nil {
		t.Fatal(err)
	}
	f, err := cl.Create("/up/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := cl.Stat("/up/big.bin"); err != nil || st.Size() != int64(len(data)) {
		t.Fatalf("stat after put: %v %v", st, err)
	}
	if err := cl.Rename("/up/big.bin", "/up/moved.bin"); err != nil {
		t.Fatal(err)
	}
	entries, err := cl.ReadDir("/up")
	if err != nil || len(entries) != 1 || entries[0].Name() != "moved.bin" {
		t.Fatalf("ReadDir: %v %v", entries, err)
	}
	g, err := cl.Open("/up/moved.bin")
	if err != nil {
		t.Fatal(err)
	}
	var back bytes.Buffer
	if _, err := g.WriteTo(&back); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if !bytes.Equal(back.Bytes(), data) {
		t.Fatalf("get returned %d bytes, differing from the 5 MiB put", back.Len())
	}
	if _, err := cl.Stat("/up/nothing"); err == nil {
		t.Fatal("stat of a missing file succeeded")
	}
	if err := cl.Remove("/up/moved.bin"); err != nil {
		t.Fatal(err)
	}
	if err := cl.RemoveDirectory("/up"); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	for r := range reqs {
		if r.Type == "exit-status" {
			var m struct{ Status uint32 }
			ssh.Unmarshal(r.Payload, &m)
			if m.Status != 0 {
				t.Fatalf("sftp exit status %d", m.Status)
			}
		}
	}
}

func TestDockerSFTPRefusedForOtherLogins(t *testing.T) {
	d := testenv.RequireDocker(t)
	name := fmt.Sprintf("gh-sftpu-%d", time.Now().UnixNano())
	d.RunContainer(t, name, nil)
	c := dial(t, d, name, "nobody")
	ch, _, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Value string }{"sftp"})); ok {
		t.Fatal("sftp accepted for a non-root login")
	}
	line := make([]byte, 200)
	n, _ := io.ReadAtLeast(ch.Stderr(), line, 40)
	if !strings.Contains(string(line[:n]), "sftp is not available in containers") {
		t.Fatalf("stderr %q", line[:n])
	}
	ch.Close()
}
