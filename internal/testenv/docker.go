package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImage is the scratch busybox image .ci/test.sh builds.
const TestImage = "gatehouse-test-busybox:latest"

// Docker is a reachable Docker Engine with the test image.
type Docker struct {
	// Host is the engine endpoint, as configured on docker targets.
	Host string
}

// RequireDocker finds a running Docker Engine with the test image (CI starts
// one: dockerd --bridge=none --iptables=false, see .ci/test.sh).
func RequireDocker(t testing.TB) *Docker {
	t.Helper()
	_, err := exec.LookPath("docker")
	Require(t, "docker", "apt-get install docker.io", err == nil)
	ok := exec.Command("docker", "info").Run() == nil
	Require(t, "a running Docker Engine", ".ci/test.sh starts dockerd --bridge=none --iptables=false", ok)
	ok = exec.Command("docker", "image", "inspect", TestImage).Run() == nil || buildTestImage(t)
	Require(t, "the test image "+TestImage, "apt-get install busybox-static (.ci/test.sh builds it FROM scratch)", ok)
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	return &Docker{Host: host}
}

// RunContainer starts a container of the test image with no network,
// running until the test ends, and returns its id.
func (d *Docker) RunContainer(t testing.TB, name string, labels map[string]string) string {
	t.Helper()
	args := []string{"run", "-d", "--rm", "--network", "none", "--name", name}
	for k, v := range labels {
		args = append(args, "--label", k+"="+v)
	}
	args = append(args, TestImage, "sleep", "3600")
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v: %s", err, out)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	return id
}

// Kill kills a container at once.
func (d *Docker) Kill(t testing.TB, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "kill", id).CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v: %s", err, out)
	}
}

// buildTestImage builds TestImage FROM scratch from the static busybox of
// Debian's busybox-static, as .ci/test.sh does.
func buildTestImage(t testing.TB) bool {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return false
	}
	dir := t.TempDir()
	dockerfile := "FROM scratch\nCOPY busybox /bin/busybox\n" +
		"RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"/bin/sh\"]\n"
	if os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755) != nil ||
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644) != nil {
		return false
	}
	out, err := exec.Command("docker", "build", "-q", "-t", TestImage, dir).CombinedOutput()
	if err != nil {
		t.Logf("testenv: building %s: %v: %s", TestImage, err, out)
		return false
	}
	return true
}
