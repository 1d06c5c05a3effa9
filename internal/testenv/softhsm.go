package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SoftHSMModule is Debian softhsm2's PKCS#11 module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// SoftHSM is a fresh SoftHSM2 token for one test.
type SoftHSM struct {
	Module, TokenLabel, Pin, PinFile string
}

// StartSoftHSM points SOFTHSM2_CONF at a private token directory for this
// test and initialises a token "gatehouse" (user PIN 1234, SO PIN 5678).
func StartSoftHSM(t *testing.T) *SoftHSM {
	t.Helper()
	util := RequireBinary(t, "softhsm2-util", "apt-get install softhsm2")
	_, err := os.Stat(SoftHSMModule)
	Require(t, "the SoftHSM2 PKCS#11 module", "apt-get install softhsm2", err == nil)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	os.MkdirAll(tokens, 0o700)
	conf := filepath.Join(dir, "softhsm2.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)), 0o600)
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", "gatehouse", "--pin", "1234", "--so-pin", "5678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v: %s", err, out)
	}
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte("1234\n"), 0o600)
	return &SoftHSM{Module: SoftHSMModule, TokenLabel: "gatehouse", Pin: "1234", PinFile: pinFile}
}
