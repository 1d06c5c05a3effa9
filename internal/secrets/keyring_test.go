package secrets

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMasterKeySources(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvMasterKey, "")

	// A configured key file that is missing is an error, never a new key.
	missing := filepath.Join(dir, "secrets", "master.key")
	_, err := LoadKeyringFrom(missing, false)
	if err == nil || !strings.HasPrefix(err.Error(), "secrets: master key file "+missing+" does not exist (create it once with: head -c 32 /dev/urandom | base64 > ") {
		t.Fatalf("missing key file: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("a missing key file was created: %v", err)
	}

	// The default file in the data directory is created once, 0600.
	def := filepath.Join(dir, "data", "master.key")
	k1, err := LoadKeyringFrom(def, true)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(def); fi.Mode().Perm() != 0o600 {
		t.Fatalf("created key file mode %v", fi.Mode().Perm())
	}
	k2, err := LoadKeyringFrom(def, false)
	if err != nil || !bytes.Equal(k1.key, k2.key) {
		t.Fatalf("reading the key again: %v", err)
	}

	// Readable by others: refused.
	os.Chmod(def, 0o640)
	if _, err := LoadKeyringFrom(def, false); err == nil || !strings.Contains(err.Error(), "is readable by others (mode -rw-r-----): chmod 600 it") {
		t.Fatalf("group-readable key: %v", err)
	}

	// The environment wins over any file.
	env := bytes.Repeat([]byte{7}, 32)
	t.Setenv(EnvMasterKey, base64.StdEncoding.EncodeToString(env))
	k3, err := LoadKeyringFrom(missing, false)
	if err != nil || !bytes.Equal(k3.key, env) {
		t.Fatalf("key from %s: %v", EnvMasterKey, err)
	}
	t.Setenv(EnvMasterKey, "c2hvcnQ=")
	if _, err := LoadKeyringFrom(def, false); err == nil || err.Error() != "secrets: GATEHOUSE_MASTER_KEY must be 32 bytes, base64" {
		t.Fatalf("short key in the environment: %v", err)
	}
}
