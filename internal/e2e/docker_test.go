package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

func TestContainers(t *testing.T) {
	d := testenv.RequireDocker(t)
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	pay := fmt.Sprintf("pay-%d", time.Now().UnixNano())
	blog := fmt.Sprintf("blog-%d", time.Now().UnixNano())
	payID := d.RunContainer(t, pay, map[string]string{"team": "payments"})
	d.RunContainer(t, blog, map[string]string{"team": "blog"})

	t.Run("exec with exit code and separate stderr", func(t *testing.T) {
		r := alice.direct("root", "docker:"+pay, "echo out; echo err >&2; exit 7")
		if r.code != 7 || r.stdout != "out\n" || r.stderr != "err\n" {
			t.Fatalf("got %s", r)
		}
		s := lastSession(t, w)
		if s.TargetKind != "docker" || s.Target != "docker:"+pay || s.RecordingID == "" {
			t.Fatalf("session %+v", s)
		}
	})
	t.Run("stdin piped", func(t *testing.T) {
		c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@docker:"+pay+"@127.0.0.1", "cat")
		c.Stdin = strings.NewReader("hi from stdin\n")
		out, err := c.Output()
		if err != nil || string(out) != "hi from stdin\n" {
			t.Fatalf("got %q %v", out, err)
		}
	})
	t.Run("interactive shell sees resizes", func(t *testing.T) {
		c := alice.cmd(context.Background(), "ssh", "-tt", "-p", w.port, "root@docker:"+pay+"@127.0.0.1")
		term := testenv.StartPTY(t, c, 80, 24)
		term.Expect(t, "# ", 20*time.Second)
		term.Send("stty size\r")
		term.Expect(t, "24 80", 15*time.Second)
		term.Resize(100, 40)
		time.Sleep(300 * time.Millisecond)
		term.Send("stty size\r")
		term.Expect(t, "40 100", 15*time.Second)
		term.Send("exit 5\r")
		if code := term.Wait(); code != 5 {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("policy denies by container label", func(t *testing.T) {
		r := alice.direct("root", "docker:"+blog, "id")
		want := fmt.Sprintf("gatehouse: access denied: no role of alice (dba, payments) allows root on docker:%s", blog)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Fatalf("got %s", r)
		}
	})
	t.Run("container not found", func(t *testing.T) {
		r := alice.direct("root", "docker:no-such-container", "id")
		if r.code == 0 || !strings.Contains(r.stderr, `gatehouse: container "no-such-container" not found`) {
			t.Fatalf("got %s", r)
		}
	})
	t.Run("scp into and out of a container (gateway-side sftp)", func(t *testing.T) {
		// scp splits host:path at the first ':', so the user name goes in -o User.
		r := alice.run("scp", "-q", "-P", w.port, "-o", "User=root@docker:"+pay, w.configFile, "127.0.0.1:/config.yaml")
		if r.code != 0 {
			t.Fatalf("scp put: %s", r)
		}
		back := filepath.Join(t.TempDir(), "back.yaml")
		if r := alice.run("scp", "-q", "-P", w.port, "-o", "User=root@docker:"+pay, "127.0.0.1:/config.yaml", back); r.code != 0 {
			t.Fatalf("scp get: %s", r)
		}
		want, _ := os.ReadFile(w.configFile)
		if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("round trip: %d bytes back of %d (%v)", len(got), len(want), err)
		}
	})
	t.Run("container killed mid-session", func(t *testing.T) {
		c := alice.cmd(context.Background(), "ssh", "-p", w.port, "root@docker:"+pay+"@127.0.0.1", "echo started; sleep 60")
		var out, errb syncBuffer
		c.Stdout, c.Stderr = &out, &errb
		c.Start()
		waitFor(t, "started", func() bool { return strings.Contains(out.String(), "started") })
		d.Kill(t, payID)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("ssh hung after the container died")
		}
		if c.ProcessState.ExitCode() == 0 || !strings.Contains(errb.String(), "container "+pay+" stopped during the session") {
			t.Fatalf("exit %d stderr %q", c.ProcessState.ExitCode(), errb.String())
		}
	})
}
