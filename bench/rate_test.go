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
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// BenchmarkSessionRate opens recorded exec sessions through the gateway to
// a real sshd as fast as parallel Go SSH clients can, and reports sessions
// per second (DESIGN.md target: 200/s). Each session is a full connection:
// handshake, certificate check, policy, per-session certificate, target
// handshake, recording, audit events. Run with:
//
//	go test ./bench/ -run '^$' -bench SessionRate -benchtime 400x
func BenchmarkSessionRate(b *testing.B) {
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
	sshd := testenv.StartSSHD(b, testenv.SSHDOptions{SessionCA: a0.SessionCAPublicKey(), ExtraConfig: "MaxStartups 1000\nLogLevel ERROR\n"})
	yaml := fmt.Sprintf(`data_dir: %s/data
ssh: {listen: "127.0.0.1:0", max_unauthenticated_per_ip: 1000}
web: {listen: "127.0.0.1:0", insecure_http: true}
targets:
  - {name: bench, address: %q, host_key: %q}
roles:
  - {name: bench, allow: {targets: {names: [bench]}, logins: [root]}}
bindings:
  - {user: bench, roles: [bench]}
`, dir, sshd.Addr, sshd.HostKeyLine)
	os.WriteFile(filepath.Join(dir, "gatehouse.yaml"), []byte(yaml), 0o600)
	cfg, err := config.Load(filepath.Join(dir, "gatehouse.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	gw, err := app.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close(context.Background())
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewSignerFromKey(priv)
	cert, err := gw.Authority.IssueUserCert(context.Background(), auth.UserCertRequest{
		Identity: auth.Identity{User: "bench"}, PublicKey: key.PublicKey(), TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := ssh.NewCertSigner(cert, key)
	hostCA := gw.Authority.HostCAPublicKey()
	ccfg := &ssh.ClientConfig{User: "root@bench", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: (&ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
			return string(k.Marshal()) == string(hostCA.Marshal())
		}}).CheckHostKey, Timeout: 30 * time.Second}
	var failed atomic.Int64
	b.SetParallelism(parallelism())
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := oneSession(gw.SSHAddr(), ccfg); err != nil {
				failed.Add(1)
			}
		}
	})
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "sessions/s")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d sessions failed", n, b.N)
	}
}

func oneSession(addr string, cfg *ssh.ClientConfig) error {
	c, err := ssh.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run("true")
}

// parallelism is the client goroutines per CPU (GATEHOUSE_BENCH_PARALLEL,
// default 8).
func parallelism() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("GATEHOUSE_BENCH_PARALLEL"), &n); err == nil && n > 0 {
		return n
	}
	return 8
}
