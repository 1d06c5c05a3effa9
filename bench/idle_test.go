package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
)

// BenchmarkIdleSessionMemory opens b.N idle interactive recorded sessions
// through an in-process gateway to the in-process Go target and reports the
// live heap and goroutine stacks per session after a GC (the gateway, the
// clients and the target share this process: the figures are the growth
// over all three, an upper bound for the gateway). With
// GATEHOUSE_HEAP_PROFILE=FILE it writes the heap profile there while the
// sessions are open. Run with:
//
//	go test ./bench/ -run '^$' -bench IdleSessionMemory -benchtime 500x
func BenchmarkIdleSessionMemory(b *testing.B) {
	gw, ccfg, tgt := startInProcessGateway(b)
	defer gw.Close(context.Background())
	defer tgt.Close()
	before := liveMemory()
	var clients []*ssh.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := 0; i < b.N; i++ {
		c, err := IdleSession(gw.SSHAddr(), ccfg)
		if err != nil {
			b.Fatalf("session %d: %v", i, err)
		}
		clients = append(clients, c)
	}
	time.Sleep(2 * time.Second)
	after := liveMemory()
	if f := os.Getenv("GATEHOUSE_HEAP_PROFILE"); f != "" {
		w, _ := os.Create(f)
		pprof.Lookup("heap").WriteTo(w, 0)
		w.Close()
	}
	n := float64(b.N)
	b.ReportMetric(float64(after.heap-before.heap)/n/1024, "heap-KiB/session")
	b.ReportMetric(float64(after.stack-before.stack)/n/1024, "stack-KiB/session")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/n, "goroutines/session")
}

type memFigures struct {
	heap, stack uint64
	goroutines  int
}

func liveMemory() memFigures {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// startInProcessGateway starts a gateway (app.Start) in this process with
// one target, the in-process Go target, and returns a client config for
// root@fast.
func startInProcessGateway(b *testing.B) (*app.App, *ssh.ClientConfig, *GoTarget) {
	dir := b.TempDir()
	boot, _ := config.Parse("boot.yaml", []byte("data_dir: "+dir+"/data\n"))
	env, err := app.OpenEnv(boot)
	if err != nil {
		b.Fatal(err)
	}
	a0, err := auth.LoadAuthority(context.Background(), env.Secrets, env.DB.DB)
	if err != nil {
		b.Fatal(err)
	}
	env.Close()
	tgt, err := StartGoTarget(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(a0.SessionCAPublicKey()))))
	if err != nil {
		b.Fatal(err)
	}
	yaml := fmt.Sprintf(`data_dir: %s/data
ssh: {listen: "127.0.0.1:0", max_unauthenticated_per_ip: 1000}
web: {listen: "127.0.0.1:0", insecure_http: true}
targets:
  - {name: fast, address: %q, host_key: %q}
roles:
  - {name: bench, allow: {targets: {names: [fast]}, logins: [root]}}
bindings:
  - {user: bench, roles: [bench]}
`, dir, tgt.Addr(), tgt.HostPub)
	os.WriteFile(filepath.Join(dir, "gatehouse.yaml"), []byte(yaml), 0o600)
	cfg, err := config.Load(filepath.Join(dir, "gatehouse.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	gw, err := app.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewSignerFromKey(priv)
	cert, err := gw.Authority.IssueUserCert(context.Background(), auth.UserCertRequest{
		Identity: auth.Identity{User: "bench"}, PublicKey: key.PublicKey(), TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := ssh.NewCertSigner(cert, key)
	hostCA := gw.Authority.HostCAPublicKey()
	ccfg := &ssh.ClientConfig{User: "root@fast", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: (&ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
			return string(k.Marshal()) == string(hostCA.Marshal())
		}}).CheckHostKey, Timeout: 30 * time.Second}
	return gw, ccfg, tgt
}
