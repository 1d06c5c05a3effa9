package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersityGWInstall is how .ci/test.sh installs the S3-compatible server.
const VersityGWInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// VersityGW is a versitygw S3-compatible server with its POSIX backend on a
// loopback port, in temporary directories, with versioning (so object lock
// works). Its one account is the root account AccessKey/SecretKey.
type VersityGW struct {
	Endpoint             string // http://127.0.0.1:PORT
	AccessKey, SecretKey string
	Root, VersionDir     string
	// IAMDir, when set before Start (StartVersityGWIAM), runs versitygw's
	// internal IAM there, so accounts besides root exist and bucket
	// policies decide what they may do.
	IAMDir string

	addr string
	bin  string
	cmd  *exec.Cmd
	done chan struct{}
	t    testing.TB
}

// VersityGWPath finds the versitygw binary: on PATH or in $(go env GOPATH)/bin.
func VersityGWPath() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = string(trimNL(out))
		}
	}
	p := filepath.Join(gopath, "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// StartVersityGW starts a server for one test and stops it at cleanup.
func StartVersityGW(t testing.TB) *VersityGW {
	t.Helper()
	return startVersityGW(t, false)
}

// StartVersityGWIAM starts a server with its internal IAM service, so the
// test can create non-root accounts (CreateUser) whose access comes only
// from bucket policies.
func StartVersityGWIAM(t testing.TB) *VersityGW {
	t.Helper()
	return startVersityGW(t, true)
}

func startVersityGW(t testing.TB, iam bool) *VersityGW {
	t.Helper()
	bin := VersityGWPath()
	Require(t, "versitygw", VersityGWInstall, bin != "")
	dir := t.TempDir()
	g := &VersityGW{AccessKey: "gatehouse-test-ak", SecretKey: "gatehouse-test-secret-key-0123456789",
		Root: filepath.Join(dir, "root"), VersionDir: filepath.Join(dir, "versions"), bin: bin, t: t}
	dirs := []string{g.Root, g.VersionDir}
	if iam {
		g.IAMDir = filepath.Join(dir, "iam")
		dirs = append(dirs, g.IAMDir)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	addr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	g.addr = addr
	g.Endpoint = "http://" + g.addr
	g.Start()
	t.Cleanup(g.Stop)
	return g
}

// Start (re)starts the server on its address and waits until it accepts
// connections.
func (g *VersityGW) Start() {
	g.t.Helper()
	log, err := os.OpenFile(filepath.Join(filepath.Dir(g.Root), "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		g.t.Fatal(err)
	}
	args := []string{"--access", g.AccessKey, "--secret", g.SecretKey, "--port", g.addr}
	if g.IAMDir != "" {
		args = append(args, "--iam-dir", g.IAMDir)
	}
	args = append(args, "posix", "--versioning-dir", g.VersionDir, g.Root)
	g.cmd = exec.Command(g.bin, args...)
	g.cmd.Stdout, g.cmd.Stderr = log, log
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		log.Close()
		g.t.Fatalf("testenv: start versitygw: %v", err)
	}
	done := make(chan struct{})
	g.done = done
	go func() { g.cmd.Wait(); log.Close(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			out, _ := os.ReadFile(filepath.Join(filepath.Dir(g.Root), "versitygw.log"))
			g.t.Fatalf("testenv: versitygw exited at start: %s", out)
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("testenv: versitygw did not listen on %s: %v", g.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to exit (idempotent).
func (g *VersityGW) Stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	g.cmd.Process.Kill()
	<-g.done
	g.cmd = nil
}

// Env is the AWS credential chain's environment for this server.
func (g *VersityGW) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + g.AccessKey, "AWS_SECRET_ACCESS_KEY=" + g.SecretKey,
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
}

// SetEnv points this process's AWS credential chain at the server for the
// test (t.Setenv: not for parallel tests).
func (g *VersityGW) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range g.Env() {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				t.Setenv(kv[:i], kv[i+1:])
				break
			}
		}
	}
}

// String names the server in messages.
func (g *VersityGW) String() string { return fmt.Sprintf("versitygw at %s", g.Endpoint) }

// Client is an S3 client with the server's root credentials (path-style).
func (g *VersityGW) Client() *s3.Client { return g.ClientAs(g.AccessKey, g.SecretKey) }

// ClientAs is an S3 client with another account's credentials.
func (g *VersityGW) ClientAs(access, secret string) *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(g.Endpoint), UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: access, SecretAccessKey: secret}, nil
		})})
}

// CreateUser adds an account with role "user" through versitygw's own admin
// command (the server must have been started with StartVersityGWIAM). Such an
// account owns no bucket; what it may do in another account's bucket is
// whatever that bucket's policy grants it.
func (g *VersityGW) CreateUser(t testing.TB, access, secret string) {
	t.Helper()
	if g.IAMDir == "" {
		t.Fatal("testenv: CreateUser needs StartVersityGWIAM")
	}
	out, err := exec.Command(g.bin, "admin", "-a", g.AccessKey, "-s", g.SecretKey, "-er", g.Endpoint,
		"create-user", "-a", access, "-s", secret, "-r", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: versitygw admin create-user %s: %v: %s", access, err, out)
	}
}

// CreateBucket creates a bucket, with object lock enabled (and so
// versioning) when objectLock is set.
func (g *VersityGW) CreateBucket(t testing.TB, name string, objectLock bool) {
	t.Helper()
	if _, err := g.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name),
		ObjectLockEnabledForBucket: aws.Bool(objectLock)}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", name, err)
	}
}
