package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPostgresTLSOnly starts the private cluster and checks what the
// gateway relies on: a verified TLS connection with the password works, and
// a plaintext one is refused.
func TestPostgresTLSOnly(t *testing.T) {
	RequireBinary(t, "psql", "apt-get install postgresql-client")
	pg := StartPostgres(t)
	url := pg.NewDatabase(t)
	out, err := exec.Command("psql", url, "-tA", "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "t" {
		t.Fatalf("TLS connection: %v\n%s", err, out)
	}
	plain := strings.Replace(url, "sslmode=verify-full", "sslmode=disable", 1)
	out, err = exec.Command("psql", plain, "-tA", "-c", "SELECT 1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no pg_hba.conf entry") {
		t.Fatalf("plaintext connection was not refused: %v\n%s", err, out)
	}
}
