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
	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// HA sizing (docs/ha.md). Run with:
//
//	go test ./bench/ -run '^$' -bench HASessionRate -benchtime 400x
//	go test ./bench/ -run '^$' -bench AuditAppendEngines -benchtime 20000x
//
// or bash bench/ha.sh, which adds the upload throughput to versitygw and the
// recovery time after kill -9 of one of two instances.

// BenchmarkHASessionRate opens recorded exec sessions through one or two
// gateway instances sharing one PostgreSQL database (a private TLS cluster
// on loopback, as internal/testenv starts it), the clients spread evenly
// over the instances. It reports sessions per second in all and per
// instance. Both instances run in this process on the same 2 cores, so the
// two-instance figure measures the shared database, not added CPU.
func BenchmarkHASessionRate(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("postgres-%d", n), func(b *testing.B) { haSessionRate(b, n) })
	}
}

func haSessionRate(b *testing.B, instances int) {
	pg := testenv.StartPostgres(b)
	url := pg.NewDatabase(b)
	dir := b.TempDir()
	dbCfg := fmt.Sprintf("database: {url: %q}\n", url)
	boot, _ := config.Parse("boot.yaml", []byte("data_dir: "+dir+"/data\n"+dbCfg))
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
	var gws []*app.App
	for i := 0; i < instances; i++ {
		data := fmt.Sprintf("data_dir: %s/data\n", dir)
		if i > 0 {
			data = fmt.Sprintf("data_dir: %s/data%d\nmaster_key_file: %s/data/master.key\n", dir, i, dir)
		}
		yaml := data + dbCfg + fmt.Sprintf(`ssh: {listen: "127.0.0.1:0", max_unauthenticated_per_ip: 1000}
web: {listen: "127.0.0.1:0", insecure_http: true}
targets:
  - {name: bench, address: %q, host_key: %q}
roles:
  - {name: bench, allow: {targets: {names: [bench]}, logins: [root]}}
bindings:
  - {user: bench, roles: [bench]}
`, sshd.Addr, sshd.HostKeyLine)
		path := filepath.Join(dir, fmt.Sprintf("gatehouse%d.yaml", i))
		os.WriteFile(path, []byte(yaml), 0o600)
		cfg, err := config.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		gw, err := app.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		defer gw.Close(context.Background())
		gws = append(gws, gw)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewSignerFromKey(priv)
	cert, err := gws[0].Authority.IssueUserCert(context.Background(), auth.UserCertRequest{
		Identity: auth.Identity{User: "bench"}, PublicKey: key.PublicKey(), TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := ssh.NewCertSigner(cert, key)
	hostCA := gws[0].Authority.HostCAPublicKey()
	ccfg := &ssh.ClientConfig{User: "root@bench", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: (&ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
			return string(k.Marshal()) == string(hostCA.Marshal())
		}}).CheckHostKey, Timeout: 30 * time.Second}
	var failed, next atomic.Int64
	b.SetParallelism(parallelism())
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			gw := gws[int(next.Add(1))%len(gws)]
			if err := oneSession(gw.SSHAddr(), ccfg); err != nil {
				failed.Add(1)
			}
		}
	})
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "sessions/s")
	b.ReportMetric(float64(b.N)/el.Seconds()/float64(instances), "sessions/s/instance")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d sessions failed", n, b.N)
	}
}

// BenchmarkAuditAppendEngines appends audit events from 256 goroutines to
// one chain: on SQLite (one file), on PostgreSQL from one instance, and on
// PostgreSQL from two instances at once (two audit writers on one database,
// serialised by the advisory lock). events/s is the rate the chain grows.
func BenchmarkAuditAppendEngines(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		db, l := openLog(b, b.TempDir())
		defer db.Close()
		defer l.Close()
		b.ResetTimer()
		d := appendMany(b, l, b.N)
		b.ReportMetric(float64(b.N/256*256)/d.Seconds(), "events/s") // appendMany's 256 writers append n/256 each
	})
	for _, writers := range []int{1, 2} {
		b.Run(fmt.Sprintf("postgres-%d", writers), func(b *testing.B) {
			pg := testenv.StartPostgres(b)
			url := pg.NewDatabase(b)
			var logs []*audit.Log
			for i := 0; i < writers; i++ {
				db, err := store.OpenURL(context.Background(), url, b.TempDir(), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				kr, _ := secrets.NewKeyring(make([]byte, 32))
				l, err := audit.Open(db, secrets.NewStore(db.DB, kr), audit.Options{CheckpointInterval: -1})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				logs = append(logs, l)
			}
			b.ResetTimer()
			start := time.Now()
			done := make(chan struct{})
			for _, l := range logs {
				go func() {
					appendMany(b, l, b.N/len(logs))
					done <- struct{}{}
				}()
			}
			for range logs {
				<-done
			}
			d := time.Since(start)
			b.ReportMetric(float64(b.N/len(logs)/256*256*len(logs))/d.Seconds(), "events/s")
		})
	}
}
