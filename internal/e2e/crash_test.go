package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// gatehouseBinary builds cmd/gatehouse once per test run.
func gatehouseBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gatehouse")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/gatehouse/gatehouse/cmd/gatehouse").CombinedOutput()
		if err != nil {
			buildErr = &buildError{string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("build gatehouse: %v", buildErr)
	}
	return binPath
}

type buildError struct{ out string }

func (e *buildError) Error() string { return e.out }

// serveProcess runs `gatehouse serve` and returns it with its SSH port.
func serveProcess(t *testing.T, bin, config string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", config)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = &testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "gatehouse: SSH on ") {
		t.Fatalf("serve did not start: %q %v", line, err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "gatehouse: SSH on "))
	return cmd, addr[strings.LastIndexByte(addr, ':')+1:]
}

func (w *world) cli(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--config", w.configFile)...).CombinedOutput()
	if err != nil {
		t.Fatalf("gatehouse %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestKill9GatewaySealsOnRestart kills the gateway process mid-session; the
// next start seals the recording as incomplete, ends the session with an
// abnormal end event, and the recording still plays.
func TestKill9GatewaySealsOnRestart(t *testing.T) {
	bin := gatehouseBinary(t)
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.app.Close(ctx) // hand the data directory to a real process
	cancel()
	gw, port := serveProcess(t, bin, w.configFile)
	c := alice.cmd(context.Background(), "ssh", "-tt", "-p", port, "root@db-1@127.0.0.1")
	term := testenv.StartPTY(t, c, 80, 24)
	term.Expect(t, "# ", 15*time.Second)
	term.Send("echo before-crash-$((1+1))\r")
	term.Expect(t, "before-crash-2", 15*time.Second)
	time.Sleep(1500 * time.Millisecond) // recordings flush every second
	gw.Process.Signal(syscall.SIGKILL)
	gw.Wait()
	term.Wait()

	serveProcess(t, bin, w.configFile) // the restart recovers
	// At once on SQLite; on PostgreSQL once the killed instance's lease has
	// run out (database.instance_lease).
	var list string
	waitFor(t, "the killed instance's recording to be sealed", func() bool {
		list = w.cli(t, bin, "recording", "list")
		return strings.Contains(list, "partial")
	})
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	out := filepath.Join(w.dir, "crash.cast")
	msg := w.cli(t, bin, "recording", "export", id, "--out", out)
	if !strings.Contains(msg, "INCOMPLETE: gateway stopped unexpectedly") {
		t.Fatalf("export: %s", msg)
	}
	cast, _ := os.ReadFile(out)
	if !strings.Contains(string(cast), "before-crash-2") {
		t.Fatalf("the recovered recording lost what was shown before the crash:\n%s", cast)
	}
	tail := w.cli(t, bin, "audit", "tail", "-n", "50")
	if !strings.Contains(tail, "session.end") || !strings.Contains(tail, `"abnormal":true`) {
		t.Fatalf("no abnormal session end event:\n%s", tail)
	}
	if v := w.cli(t, bin, "audit", "verify"); !strings.HasPrefix(v, "OK: ") {
		t.Fatalf("audit verify: %s", v)
	}
}
