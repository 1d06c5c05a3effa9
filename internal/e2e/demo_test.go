package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// readmeFirstCommand is the first shell block of the README's quickstart.
func readmeFirstCommand(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, qs, ok := strings.Cut(string(b), "## Quickstart")
	m := regexp.MustCompile("(?s)```sh\n(.*?)\n```").FindStringSubmatch(qs)
	if !ok || m == nil || strings.Contains(m[1], "\n") {
		t.Fatalf("README: the quickstart's first block is not one command: %q", m)
	}
	return m[1]
}

// freshEnv is the environment of a new user with a fresh HOME: no GOPATH,
// no XDG directories, PATH with only the system and Go's own directory. The
// Go build and module caches are shared so the build does not start cold.
func freshEnv(t *testing.T, home string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go is not on PATH")
	}
	env := []string{"HOME=" + home, "USER=" + os.Getenv("USER"), "LANG=C.UTF-8",
		"PATH=" + filepath.Dir(goBin) + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN").Output()
	if err != nil {
		t.Fatal(err)
	}
	vals := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	for i, k := range []string{"GOCACHE", "GOMODCACHE", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN"} {
		if i < len(vals) && vals[i] != "" {
			env = append(env, k+"="+vals[i])
		}
	}
	return env
}

// TestReadmeDemoCommandsRunAsPrinted is the new user's first ten minutes:
// the README's first command, run in a fresh HOME from this checkout,
// builds, installs and starts the demo; every command the demo prints runs
// exactly as printed and does what its comment says; the first Ctrl-C stops
// the demo cleanly even while a plain-ssh login waits for its approval; and
// the checkout is left as it was.
func TestReadmeDemoCommandsRunAsPrinted(t *testing.T) {
	testenv.RequireBinary(t, "ssh", "apt-get install openssh-client")
	testenv.RequireBinary(t, "scp", "apt-get install openssh-client")
	testenv.RequireBinary(t, "bash", "apt-get install bash")
	_, err := os.Stat("/usr/sbin/sshd")
	testenv.Require(t, "sshd", "apt-get install openssh-server", err == nil)
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	before := gitStatus(t, root)
	home := t.TempDir()
	env := freshEnv(t, home)
	sshPort, webPort := freePort(t), freePort(t)
	line := readmeFirstCommand(t, root) + " --listen 127.0.0.1:" + sshPort + " --web 127.0.0.1:" + webPort

	demo := exec.Command("bash", "-c", line)
	demo.Dir, demo.Env = root, env
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's Ctrl-C goes to the group
	var stderr syncBuffer
	demo.Stderr = &stderr
	out, _ := demo.StdoutPipe()
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		syscall.Kill(-demo.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	printed := make(chan string, 1)
	var stdout syncBuffer
	go func() {
		sc := bufio.NewScanner(out)
		var all strings.Builder
		sent := false
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			stdout.Write([]byte(sc.Text() + "\n"))
			if !sent && strings.Contains(sc.Text(), "gatehouse-plain") && strings.HasPrefix(sc.Text(), "  ssh ") {
				printed <- all.String()
				sent = true
			}
		}
		io.Copy(io.Discard, out)
		exited <- demo.Wait()
	}()
	var text string
	select {
	case text = <-printed:
	case err := <-exited:
		exited <- err
		t.Fatalf("the demo exited: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	case <-time.After(5 * time.Minute):
		t.Fatalf("the demo printed no instructions\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	if strings.Contains(text, "PORT") || strings.Contains(text, "LOGIN") || strings.Contains(text, "GATEWAY") {
		t.Fatalf("placeholders in the demo's instructions:\n%s", text)
	}
	stateDir := filepath.Join(home, ".local", "state", "gatehouse-demo")
	if !strings.Contains(text, stateDir) {
		t.Fatalf("the demo does not name its data directory %s:\n%s", stateDir, text)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "gatehouse.yaml")); err != nil {
		t.Fatalf("demo data not in %s: %v", stateDir, err)
	}
	cmds := demoCommands(text)
	if len(cmds) != 9 {
		t.Fatalf("want 9 commands printed, got %d: %q\n%s", len(cmds), cmds, text)
	}
	login := currentUser(t)
	os.Remove("/tmp/gatehouse-copied")
	t.Cleanup(func() { os.Remove("/tmp/gatehouse-copied") })
	run := func(c string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", c)
		cmd.Env, cmd.Dir, cmd.Stdin = env, home, nil
		b, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		return string(b), code
	}
	checks := []struct {
		prefix string // the printed command starts with this
		ok     func(out string, code int) bool
	}{
		{"ssh -F", func(o string, c int) bool { return c == 0 && strings.Contains(o, "\n"+login+"\n") }},
		{"ssh -F", func(o string, c int) bool { return strings.Contains(o, "Linux") && strings.HasSuffix(o, "\n3\n") }},
		{"ssh -F", func(o string, c int) bool {
			return c == 0 && strings.Contains(o, "Targets you may reach") &&
				strings.Contains(o, "ssh -p "+sshPort+" "+login+"@demo@127.0.0.1") &&
				strings.Contains(o, "ssh -J demo@127.0.0.1:"+sshPort+" "+login+"@demo")
		}},
		{"scp -F", func(o string, c int) bool {
			_, err := os.Stat("/tmp/gatehouse-copied")
			return c == 0 && err == nil
		}},
		{"ssh -F", func(o string, c int) bool {
			return c != 0 && strings.Contains(o, "gatehouse: access denied: no role of demo (demo) allows nobody on demo")
		}},
		{"printf", func(o string, c int) bool { return c == 0 && strings.Contains(o, "\n"+login+"\n") }},
		{"", func(o string, c int) bool {
			return c == 0 && strings.Contains(o, "bash (shell, script on stdin: 2 commands)") &&
				!strings.Contains(o, "sftp/scp")
		}},
		{"", func(o string, c int) bool {
			return c == 0 && strings.HasPrefix(o, "OK: ") && strings.Contains(o, "hash chain") &&
				!strings.Contains(o, "0 signed checkpoints match")
		}},
	}
	for i, want := range checks {
		c := cmds[i]
		if !strings.HasPrefix(c, want.prefix) {
			t.Fatalf("command %d is %q, want it to start with %q", i+1, c, want.prefix)
		}
		var o string
		var code int
		deadline := time.Now().Add(30 * time.Second)
		for {
			o, code = run(c)
			// Recordings are sealed just after the client exits: poll.
			if want.ok(o, code) || time.Now().After(deadline) || !strings.Contains(c, "recording list") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !want.ok(o, code) {
			t.Fatalf("printed command failed: %s\nexit %d, output:\n%s\ndemo stderr:\n%s", c, code, o, stderr.String())
		}
		t.Logf("ran as printed: %s", c)
	}

	// Plain ssh waits for a browser approval; Ctrl-C stops the demo anyway.
	plain := exec.Command("bash", "-c", cmds[8])
	plain.Env, plain.Dir = env, home
	var plainOut syncBuffer
	plain.Stdout, plain.Stderr = &plainOut, &plainOut
	if err := plain.Start(); err != nil {
		t.Fatal(err)
	}
	plainDone := make(chan struct{})
	go func() { plain.Wait(); close(plainDone) }()
	t.Cleanup(func() { plain.Process.Kill(); <-plainDone })
	waitFor(t, "the approval prompt", func() bool { return approvalRE.MatchString(plainOut.String()) })
	targetAddr := demoTargetAddr(t, filepath.Join(stateDir, "gatehouse.yaml"))
	syscall.Kill(-demo.Process.Pid, syscall.SIGINT)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("the demo did not stop cleanly on Ctrl-C: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the demo did not stop on the first Ctrl-C\nstdout:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "Gatehouse demo stopped.") {
		t.Fatalf("no stop message:\n%s", stdout.String())
	}
	select {
	case <-plainDone:
	case <-time.After(60 * time.Second):
		t.Fatal("the waiting plain ssh was not disconnected")
	}
	if c, err := net.DialTimeout("tcp", targetAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("the demo's target sshd still listens on %s", targetAddr)
	}
	if after := gitStatus(t, root); after != before {
		t.Fatalf("the demo changed the checkout:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// demoCommands returns the commands the demo printed: indented lines that
// start a command.
func demoCommands(text string) []string {
	var cmds []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "  ") {
			continue
		}
		l = strings.TrimSpace(l)
		for _, p := range []string{"ssh ", "scp ", "printf ", "gatehouse ", "/", "'/"} {
			if strings.HasPrefix(l, p) {
				cmds = append(cmds, l)
				break
			}
		}
	}
	return cmds
}

func demoTargetAddr(t *testing.T, cfg string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`address: "([^"]+)"`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no target address in %s", cfg)
	}
	return m[1]
}

func gitStatus(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=all").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	return string(out)
}

func currentUser(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
