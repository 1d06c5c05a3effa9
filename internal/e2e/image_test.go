package e2e

import (
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestContainerImage builds the real image with the local Docker Engine from
// Dockerfile.prebuilt and a static binary built here (no registry is
// reachable), starts it with no network, and waits for Docker's own
// HEALTHCHECK (gatehouse healthcheck -> /readyz) to call it healthy.
func TestContainerImage(t *testing.T) {
	testenv.RequireDocker(t)
	ctxDir := t.TempDir()
	bin := filepath.Join(ctxDir, "gatehouse")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/gatehouse/gatehouse/cmd/gatehouse")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	requireStatic(t, bin)
	t.Logf("static binary built")
	df, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile.prebuilt"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	testenv.Require(t, "CA certificates", "apt-get install ca-certificates", err == nil)
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), df, 0o644)
	os.WriteFile(filepath.Join(ctxDir, "ca-certificates.crt"), certs, 0o644)
	os.MkdirAll(filepath.Join(ctxDir, "data"), 0o755)
	os.WriteFile(filepath.Join(ctxDir, "data", ".keep"), nil, 0o644)

	tag := "gatehouse-image-test:" + randHex(t)
	docker(t, "build", "-q", "-t", tag, ctxDir)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	if user := strings.TrimSpace(docker(t, "image", "inspect", "-f", "{{.Config.User}}", tag)); user != "65532:65532" {
		t.Fatalf("image user %q, want the non-root 65532:65532", user)
	}
	t.Logf("image built")

	// The master key is a mounted secret outside the data volume, readable
	// by the service user only.
	cfgDir := t.TempDir()
	keyFile := filepath.Join(cfgDir, "master.key")
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	os.Chown(keyFile, 65532, 65532)
	cfgFile := filepath.Join(cfgDir, "gatehouse.yaml")
	os.WriteFile(cfgFile, []byte(`data_dir: /var/lib/gatehouse
master_key_file: /run/secrets/gatehouse-master-key
ssh: {listen: "0.0.0.0:2222"}
web: {listen: "0.0.0.0:8443"}
metrics: {listen: "127.0.0.1:9464"}
`), 0o644)
	name := "gatehouse-image-test-" + randHex(t)
	docker(t, "run", "-d", "--network", "none", "--name", name,
		"--health-interval", "1s", "--health-start-period", "60s", "--health-timeout", "10s",
		"-v", cfgFile+":/etc/gatehouse/gatehouse.yaml:ro",
		"-v", keyFile+":/run/secrets/gatehouse-master-key:ro", tag)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })

	deadline := time.Now().Add(120 * time.Second)
	for {
		status := strings.TrimSpace(docker(t, "inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", name))
		if status == "running healthy" {
			break
		}
		if !strings.HasPrefix(status, "running") || time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
			t.Fatalf("container %s (want running healthy); logs:\n%s", status, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := docker(t, "exec", name, "/gatehouse", "healthcheck"); out != "ok\n" {
		t.Fatalf("healthcheck in the container: %q", out)
	}
	// The operations listener is reachable inside the container only
	// (--network none); the probe fetches the metrics there.
	out, err := exec.Command("docker", "exec", name, "/gatehouse", "healthcheck", "--url", "http://127.0.0.1:9464/metrics").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("gatehouse_audit_queue_depth 0")) {
		t.Fatalf("metrics in the container: %v %s", err, out)
	}
	// The key came from the mounted secret: no warning about a key in data_dir.
	logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
	if bytes.Contains(logs, []byte("the master key is a file in data_dir")) {
		t.Fatalf("the container keeps its master key in the data volume:\n%s", logs)
	}
}

func requireStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked; FROM scratch needs a static binary", path)
		}
	}
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

func randHex(t *testing.T) string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
