package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestSoak runs mixed sessions through the gateway to a real sshd with the
// real OpenSSH clients for GATEHOUSE_SOAK (a duration, e.g. 30m; unset skips
// it): interactive shells, exec with output, scp up and down, port forwards
// (ssh -W to an echo server), and about 10% of sessions killed mid-way.
// It reports goroutines, open file descriptors and heap at the start and
// the end, and runs `gatehouse audit verify` at the end.
//
//	GATEHOUSE_SOAK=30m go test ./bench/ -run TestSoak -v -timeout 0
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("GATEHOUSE_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set GATEHOUSE_SOAK=30m to run the soak")
	}
	sk := newSoak(t)
	workers := 2 * parallelism()
	sk.settle()
	g0, f0, h0 := sk.figures()
	t.Logf("start: %d goroutines, %d fds, %.1f MiB heap; %d workers for %v", g0, f0, h0, workers, d)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				sk.one()
			}
		}()
	}
	wg.Wait()
	sk.settle()
	g1, f1, h1 := sk.figures()
	t.Logf("end: %d goroutines, %d fds, %.1f MiB heap", g1, f1, h1)
	t.Logf("sessions: %d ok, %d killed mid-way, %d failed", sk.ok.Load(), sk.killed.Load(), sk.failed.Load())
	for k, n := range sk.kinds() {
		t.Logf("  %-12s %d", k, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	sk.gw.Close(ctx)
	cancel()
	out, err := exec.Command(sk.bin, "audit", "verify", "--config", sk.config).CombinedOutput()
	t.Logf("audit verify: %s", strings.TrimSpace(string(out)))
	if err != nil || !strings.HasPrefix(string(out), "OK") {
		t.Errorf("audit verify failed: %v", err)
	}
	if sk.failed.Load() > 0 {
		t.Errorf("%d sessions failed; first errors:\n%s", sk.failed.Load(), strings.Join(sk.firstErrors(), "\n"))
	}
	// Growth that a leak would show: a goroutine or fd per session.
	if g1 > g0+50 || f1 > f0+20 {
		t.Errorf("growth: goroutines %d -> %d, fds %d -> %d", g0, g1, f0, f1)
	}
}

type soak struct {
	t                  *testing.T
	gw                 *app.App
	dir, bin, config   string
	port, kh, key      string
	echo, upload, down string

	ok, killed, failed atomic.Int64
	mu                 sync.Mutex
	errs               []string
	counts             map[string]int
}

func newSoak(t *testing.T) *soak {
	sk := &soak{t: t, dir: t.TempDir(), counts: map[string]int{}}
	boot, _ := config.Parse("boot.yaml", []byte("data_dir: "+sk.dir+"/data\n"))
	env, err := app.OpenEnv(boot)
	if err != nil {
		t.Fatal(err)
	}
	a0, err := auth.LoadAuthority(context.Background(), env.Secrets, env.DB.DB)
	if err != nil {
		t.Fatal(err)
	}
	env.Close()
	sshd := testenv.StartSSHD(t, testenv.SSHDOptions{SessionCA: a0.SessionCAPublicKey(),
		ExtraConfig: "MaxSessions 100\nLogLevel ERROR\n"})
	yaml := fmt.Sprintf(`data_dir: %s/data
ssh: {listen: "127.0.0.1:0", max_unauthenticated_per_ip: 1000}
web: {listen: "127.0.0.1:0", insecure_http: true}
targets:
  - {name: soak, address: %q, host_key: %q}
roles:
  - {name: soak, allow: {targets: {names: [soak]}, logins: [root]}, options: {sftp: true, port_forwarding: true}}
bindings:
  - {user: soak, roles: [soak]}
`, sk.dir, sshd.Addr, sshd.HostKeyLine)
	sk.config = filepath.Join(sk.dir, "gatehouse.yaml")
	os.WriteFile(sk.config, []byte(yaml), 0o600)
	cfg, err := config.Load(sk.config)
	if err != nil {
		t.Fatal(err)
	}
	if sk.gw, err = app.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	_, sk.port, _ = net.SplitHostPort(sk.gw.SSHAddr())
	sk.writeClientFiles()
	sk.echo = echoServer(t)
	sk.bin = filepath.Join(sk.dir, "gatehouse")
	if out, err := exec.Command("go", "build", "-o", sk.bin, "github.com/gatehouse/gatehouse/cmd/gatehouse").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return sk
}

// writeClientFiles writes the user's key, certificate, known_hosts and the
// files scp moves.
func (sk *soak) writeClientFiles() {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	sk.key = filepath.Join(sk.dir, "id_soak")
	os.WriteFile(sk.key, pem.EncodeToMemory(block), 0o600)
	signer, _ := ssh.NewSignerFromKey(priv)
	cert, err := sk.gw.Authority.IssueUserCert(context.Background(), auth.UserCertRequest{
		Identity: auth.Identity{User: "soak"}, PublicKey: signer.PublicKey(), TTL: 24 * time.Hour})
	if err != nil {
		sk.t.Fatal(err)
	}
	os.WriteFile(sk.key+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644)
	sk.kh = filepath.Join(sk.dir, "known_hosts")
	os.WriteFile(sk.kh, []byte("@cert-authority * "+string(ssh.MarshalAuthorizedKey(sk.gw.Authority.HostCAPublicKey()))), 0o644)
	sk.upload = filepath.Join(sk.dir, "upload.bin")
	b := make([]byte, 1<<20)
	rand.Read(b)
	os.WriteFile(sk.upload, b, 0o644)
	sk.down = filepath.Join(sk.dir, "down")
	os.MkdirAll(sk.down, 0o755)
}

func echoServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return l.Addr().String()
}

func (sk *soak) args(prog string, extra ...string) []string {
	a := []string{"-F", "/dev/null", "-i", sk.key, "-o", "CertificateFile=" + sk.key + "-cert.pub", "-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" + sk.kh, "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=60"}
	if prog == "scp" {
		return append(append(a, "-P", sk.port), extra...)
	}
	return append(append(a, "-p", sk.port), extra...)
}

const dest = "root@soak@127.0.0.1"

// one runs one session of a random kind.
func (sk *soak) one() {
	kinds := []string{"interactive", "exec", "scp-up", "scp-down", "forward"}
	kind := kinds[mrand.IntN(len(kinds))]
	kill := mrand.IntN(10) == 0
	var cmd *exec.Cmd
	var stdin io.Reader
	want := ""
	switch kind {
	case "interactive":
		cmd = exec.Command("ssh", sk.args("ssh", "-tt", dest)...)
		stdin = strings.NewReader("echo soak-$((6*7))\nsleep 0.2\nexit\n")
		want = "soak-42"
	case "exec":
		cmd = exec.Command("ssh", sk.args("ssh", dest, "head -c 200000 /dev/urandom | wc -c; sleep 0.5")...)
		want = "200000"
	case "scp-up":
		cmd = exec.Command("scp", sk.args("scp", sk.upload, dest+":/tmp/soak-"+fmt.Sprint(mrand.Int64()))...)
	case "scp-down":
		cmd = exec.Command("scp", sk.args("scp", dest+":"+sk.upload, filepath.Join(sk.down, fmt.Sprint(mrand.Int64())))...)
	case "forward":
		cmd = exec.Command("ssh", sk.args("ssh", "-W", sk.echo, dest)...)
		want = "ping-soak"
	}
	if kill {
		kind += "+killed"
	}
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var keepOpen io.WriteCloser
	if strings.HasPrefix(kind, "forward") {
		// -W's stdin stays open until the echo is back.
		keepOpen, _ = cmd.StdinPipe()
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		sk.fail(kind, err.Error())
		return
	}
	if keepOpen != nil {
		keepOpen.Write([]byte("ping-soak\n"))
		defer keepOpen.Close()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if kill {
		time.Sleep(time.Duration(50+mrand.IntN(400)) * time.Millisecond)
		cmd.Process.Kill()
		<-done
		sk.killed.Add(1)
		sk.count(kind)
		return
	}
	if kind == "forward" {
		// -W ends when the echo has come back and stdin is closed.
		deadline := time.After(60 * time.Second)
		for !strings.Contains(out.String(), want) {
			select {
			case <-deadline:
				cmd.Process.Kill()
				<-done
				sk.fail(kind, "no echo: "+errb.String())
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		cmd.Process.Kill()
		<-done
		sk.ok.Add(1)
		sk.count(kind)
		return
	}
	err := <-done
	if err != nil || !strings.Contains(out.String(), want) {
		sk.fail(kind, fmt.Sprintf("%v: stdout %q stderr %q", err, out.String(), errb.String()))
		return
	}
	sk.ok.Add(1)
	sk.count(kind)
}

func (sk *soak) count(kind string) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	sk.counts[kind]++
}

func (sk *soak) kinds() map[string]int {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	out := map[string]int{}
	for k, v := range sk.counts {
		out[k] = v
	}
	return out
}

func (sk *soak) fail(kind, msg string) {
	sk.failed.Add(1)
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if len(sk.errs) < 10 {
		sk.errs = append(sk.errs, kind+": "+msg)
	}
}

func (sk *soak) firstErrors() []string {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return append([]string(nil), sk.errs...)
}

// settle waits until the gateway has no live connections and teardown
// timers have run.
func (sk *soak) settle() {
	deadline := time.Now().Add(30 * time.Second)
	for sk.gw.Gateway.LiveSessions() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(8 * time.Second) // bounded teardown timers (connTeardown) expire
	runtime.GC()
}

// figures are the process's goroutines, open file descriptors and heap.
func (sk *soak) figures() (goroutines, fds int, heapMiB float64) {
	ents, _ := os.ReadDir("/proc/self/fd")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), len(ents), float64(ms.HeapInuse) / (1 << 20)
}
