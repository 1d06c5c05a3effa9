package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI, where a missing component is a
// failure rather than a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require fails (in CI) or skips the test when ok is false, naming what is
// missing and how to install it.
func Require(t testing.TB, what, installHint string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("%s is required in CI but missing: %s (.ci/test.sh installs it)", what, installHint)
	}
	t.Skipf("%s is missing: %s", what, installHint)
}

// RequireBinary requires a program on PATH (or an absolute path).
func RequireBinary(t testing.TB, name, installHint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Require(t, name, installHint, err == nil)
	return p
}
