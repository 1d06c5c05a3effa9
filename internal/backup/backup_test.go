package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
)

// install is a real SQLite store with one row and two recording files.
type install struct {
	db      *store.DB
	recs    string
	keyring *secrets.Keyring
}

func newInstall(t *testing.T) install {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, err := secrets.LoadKeyring(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := secrets.NewStore(db.DB, kr).Put(context.Background(), "test/secret", []byte("sealed value")); err != nil {
		t.Fatal(err)
	}
	recs := filepath.Join(dir, "recordings")
	os.MkdirAll(filepath.Join(recs, "2026-12"), 0o700)
	os.WriteFile(filepath.Join(recs, "2026-12", "a.rec"), []byte("recording a"), 0o600)
	os.WriteFile(filepath.Join(recs, "b.rec"), []byte(strings.Repeat("b", 100000)), 0o600)
	return install{db: db, recs: recs, keyring: kr}
}

func (in install) backup(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "backup.gh")
	m, err := Write(context.Background(), Source{DB: in.db.DB, RecordingsDir: in.recs, Keyring: in.keyring}, out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Recordings != 2 || m.RecordingBytes != 100011 || len(m.DatabaseSHA256) != 64 {
		t.Fatalf("manifest %+v", m)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	return out
}

func emptyTarget(t *testing.T, kr *secrets.Keyring) Target {
	dir := t.TempDir()
	return Target{DBPath: filepath.Join(dir, "gatehouse.db"), RecordingsDir: filepath.Join(dir, "recordings"), Keyring: kr}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	in := newInstall(t)
	file := in.backup(t)
	dst := emptyTarget(t, in.keyring)
	if _, err := Restore(context.Background(), file, dst); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(dst.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := secrets.NewStore(db.DB, in.keyring).Get(context.Background(), "test/secret")
	if err != nil || string(got) != "sealed value" {
		t.Fatalf("restored secret %q, %v", got, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst.RecordingsDir, "2026-12", "a.rec")); string(b) != "recording a" {
		t.Fatalf("restored recording %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dst.RecordingsDir, "b.rec")); len(b) != 100000 {
		t.Fatalf("restored recording b has %d bytes", len(b))
	}
	// The backup is encrypted: neither the sealed row nor a recording
	// appears in clear.
	raw, _ := os.ReadFile(file)
	if strings.Contains(string(raw), "recording a") || strings.Contains(string(raw), "SQLite format") {
		t.Fatal("backup holds plaintext")
	}
}

// TestRestoreRefuses is the attacker's side: whoever holds the backup file
// but not the master key cannot make a restorable file, and a restore never
// writes over an install.
func TestRestoreRefuses(t *testing.T) {
	in := newInstall(t)
	file := in.backup(t)
	raw, _ := os.ReadFile(file)
	other, err := secrets.LoadKeyring(filepath.Join(t.TempDir(), "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-100] ^= 1
	appended := append(append([]byte(nil), raw...), "more"...)
	// Re-signing with a key of one's own is what an attacker can do; the
	// restoring gateway derives its own signer and does not take the file's.
	cases := []struct {
		name    string
		content []byte
		kr      *secrets.Keyring
		want    error
	}{
		{"flipped ciphertext byte", flipped, in.keyring, ErrBadSignature},
		{"appended bytes", appended, in.keyring, ErrBadSignature},
		{"another gateway's master key", raw, other, ErrBadSignature},
		{"not a backup", []byte("hello\n\n"), in.keyring, ErrNotBackup},
		{"empty file", nil, in.keyring, ErrNotBackup},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "b")
			os.WriteFile(f, tc.content, 0o600)
			dst := emptyTarget(t, tc.kr)
			if _, err := Restore(context.Background(), f, dst); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(dst.DBPath); err == nil {
				t.Fatal("a database was written")
			}
			if _, err := os.Stat(dst.RecordingsDir); err == nil {
				t.Fatal("recordings were written")
			}
		})
	}
	t.Run("install already there", func(t *testing.T) {
		dst := emptyTarget(t, in.keyring)
		os.WriteFile(dst.DBPath, []byte("live"), 0o600)
		if _, err := Restore(context.Background(), file, dst); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("err %v, want ErrNotEmpty", err)
		}
		if b, _ := os.ReadFile(dst.DBPath); string(b) != "live" {
			t.Fatal("the existing database was touched")
		}
	})
}

func TestBackupToOperatorRecipient(t *testing.T) {
	in := newInstall(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "b")
	if _, err := Write(context.Background(), Source{DB: in.db.DB, RecordingsDir: in.recs, Keyring: in.keyring,
		Recipients: []age.Recipient{id.Recipient()}}, out); err != nil {
		t.Fatal(err)
	}
	dst := emptyTarget(t, in.keyring)
	if _, err := Restore(context.Background(), out, dst); err == nil {
		t.Fatal("restored without the operator's identity")
	}
	dst.Identities = []age.Identity{id}
	if _, err := Restore(context.Background(), out, dst); err != nil {
		t.Fatal(err)
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("gatehouse-backup v1\nsigner: AAAA\nsignature: AAAA\n\nxyz"))
	f.Add([]byte("gatehouse-backup v1\n\n"))
	f.Add([]byte(strings.Repeat("a", 5000)))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "h")
		os.WriteFile(p, b, 0o600)
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		h, err := readHeader(fh)
		if err == nil && (h.offset <= 0 || h.offset > int64(len(b))) {
			t.Fatalf("offset %d outside the %d-byte input", h.offset, len(b))
		}
	})
}
