package target

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// runSession runs one session request on a container and collects its
// stdout, stderr and exit status.
type sessionResult struct {
	stdout, stderr string
	status         int
}

func dial(t *testing.T, d *testenv.Docker, name, login string) Conn {
	t.Helper()
	c, err := DialDocker(context.Background(), DockerOptions{Host: d.Host}, name, login)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func collect(t *testing.T, ch ssh.Channel, reqs <-chan *ssh.Request) sessionResult {
	t.Helper()
	var out, errb bytes.Buffer
	done := make(chan struct{}, 2)
	go func() { io.Copy(&out, ch); done <- struct{}{} }()
	go func() { io.Copy(&errb, ch.Stderr()); done <- struct{}{} }()
	status := -1
	timeout := time.After(30 * time.Second)
	for reqs != nil {
		select {
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			if r.Type == "exit-status" {
				var m struct{ Status uint32 }
				ssh.Unmarshal(r.Payload, &m)
				status = int(m.Status)
			}
		case <-timeout:
			t.Fatal("session did not end")
		}
	}
	<-done
	<-done
	return sessionResult{out.String(), errb.String(), status}
}

func TestDockerExec(t *testing.T) {
	d := testenv.RequireDocker(t)
	name := fmt.Sprintf("gh-exec-%d", time.Now().UnixNano())
	d.RunContainer(t, name, map[string]string{"team": "payments"})
	c := dial(t, d, name, "root")
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := ch.SendRequest("exec", true, ssh.Marshal(struct{ Value string }{"echo hi; echo err >&2; exit 7"})); !ok {
		t.Fatal("exec refused")
	}
	r := collect(t, ch, reqs)
	if r.stdout != "hi\n" || r.stderr != "err\n" || r.status != 7 {
		t.Fatalf("got %+v", r)
	}
	labels, err := DockerContainerLabels(context.Background(), DockerOptions{Host: d.Host}, name)
	if err != nil || labels["team"] != "payments" {
		t.Fatalf("labels %v err %v", labels, err)
	}
}

func TestDockerStdinRoundTrip(t *testing.T) {
	d := testenv.RequireDocker(t)
	name := fmt.Sprintf("gh-stdin-%d", time.Now().UnixNano())
	d.RunContainer(t, name, nil)
	c := dial(t, d, name, "root")
	ch, reqs, _ := c.OpenChannel("session", nil)
	if ok, _ := ch.SendRequest("exec", true, ssh.Marshal(struct{ Value string }{"cat"})); !ok {
		t.Fatal("exec refused")
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	go func() { ch.Write(data); ch.CloseWrite() }()
	r := collect(t, ch, reqs)
	if r.stdout != string(data) || r.status != 0 {
		t.Fatalf("round trip: %d bytes back, status %d", len(r.stdout), r.status)
	}
}

// lockedBuffer is a bytes.Buffer written by one goroutine and polled by
// another.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestDockerTTYResize(t *testing.T) {
	d := testenv.RequireDocker(t)
	name := fmt.Sprintf("gh-tty-%d", time.Now().UnixNano())
	d.RunContainer(t, name, nil)
	c := dial(t, d, name, "root")
	ch, reqs, _ := c.OpenChannel("session", nil)
	ch.SendRequest("pty-req", true, ssh.Marshal(dockerPTY{Term: "xterm-256color", Cols: 80, Rows: 24}))
	if ok, _ := ch.SendRequest("shell", true, nil); !ok {
		t.Fatal("shell refused")
	}
	var out lockedBuffer
	go io.Copy(&out, ch)
	wait := func(s string) {
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %q, got %q", s, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ch.Write([]byte("stty size; echo T=$TERM\r"))
	wait("24 80")
	wait("T=xterm-256color")
	ch.SendRequest("window-change", false, ssh.Marshal(struct{ Cols, Rows, W, H uint32 }{100, 40, 0, 0}))
	ch.Write([]byte("stty size\r"))
	wait("40 100")
	ch.Write([]byte("exit 3\r"))
	for r := range reqs {
		if r.Type == "exit-status" {
			var m struct{ Status uint32 }
			ssh.Unmarshal(r.Payload, &m)
			if m.Status != 3 {
				t.Fatalf("exit status %d", m.Status)
			}
		}
	}
}

func TestDockerContainerKilledMidSession(t *testing.T) {
	d := testenv.RequireDocker(t)
	name := fmt.Sprintf("gh-kill-%d", time.Now().UnixNano())
	id := d.RunContainer(t, name, nil)
	c := dial(t, d, name, "root")
	ch, reqs, _ := c.OpenChannel("session", nil)
	ch.SendRequest("exec", true, ssh.Marshal(struct{ Value string }{"echo started; sleep 60"}))
	go func() {
		time.Sleep(500 * time.Millisecond)
		d.Kill(t, id)
	}()
	r := collect(t, ch, reqs)
	if !strings.Contains(r.stderr, "container "+name+" stopped during the session") || r.status == 0 {
		t.Fatalf("got %+v", r)
	}
}

func TestDockerErrors(t *testing.T) {
	d := testenv.RequireDocker(t)
	_, err := DialDocker(context.Background(), DockerOptions{Host: d.Host}, "no-such-container-gh", "root")
	if !errors.Is(err, ErrContainerNotFound) || !strings.Contains(err.Error(), `"no-such-container-gh"`) {
		t.Fatalf("err = %v", err)
	}
	_, err = DialDocker(context.Background(), DockerOptions{Host: "unix:///nonexistent/docker.sock"}, "x", "root")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unreachable engine: err = %v", err)
	}
	name := fmt.Sprintf("gh-fwd-%d", time.Now().UnixNano())
	d.RunContainer(t, name, nil)
	c := dial(t, d, name, "root")
	if _, _, err := c.OpenChannel("direct-tcpip", nil); err == nil || !strings.Contains(err.Error(), "not available for container targets") {
		t.Fatalf("direct-tcpip: %v", err)
	}
}
