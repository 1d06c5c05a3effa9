package audit

import (
	"os"
	"testing"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestMain stops the PostgreSQL cluster the multi-instance tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedPostgres()
	os.Exit(code)
}
