// Package backup writes and restores encrypted, signed backups of an
// embedded install: the SQLite database (an online, consistent snapshot taken
// with VACUUM INTO) and the recordings directory, in one file.
//
// A backup file is a short text header followed by an age-encrypted tar
// stream:
//
//	gatehouse-backup v1
//	signer: <base64 Ed25519 public key>
//	signature: <base64 Ed25519 signature>
//	<empty line>
//	<age ciphertext>
//
// The signature covers the SHA-256 of the ciphertext under a fixed context
// string, with an Ed25519 key derived from the master key; the ciphertext is
// encrypted with an age scrypt recipient whose passphrase is derived from the
// master key as well (or to the operator's own age recipients). Restore
// checks the signature before it decrypts anything, so a file that was
// altered, or made by a gateway with another master key, is refused whole.
//
// The master key is never in a backup: it is what protects it. Keep it apart
// (see docs/operations.md).
package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/gatehouse/gatehouse/internal/secrets"
)

const (
	magic         = "gatehouse-backup v1"
	signContext   = "gatehouse backup signature v1\n"
	purposeSign   = "backup signing v1"
	purposeSeal   = "backup encryption v1"
	manifestName  = "manifest.json"
	databaseName  = "gatehouse.db"
	recordingsDir = "recordings/"
	// scryptWorkFactor is low on purpose: the passphrase is 256 random bits
	// derived from the master key, so stretching it buys nothing.
	scryptWorkFactor = 10
	maxHeader        = 4096
)

// Errors callers branch on.
var (
	ErrBadSignature = errors.New("backup: the signature does not verify with this gateway's master key (the file was altered, or another gateway made it); nothing was restored")
	ErrNotBackup    = errors.New("backup: not a Gatehouse backup file")
	ErrNotEmpty     = errors.New("backup: the data directory already holds a database; restore into an empty data directory (move the old one away first)")
)

// Manifest describes what a backup holds.
type Manifest struct {
	Version        int       `json:"version"`
	Created        time.Time `json:"created"`
	DatabaseSHA256 string    `json:"database_sha256"`
	DatabaseBytes  int64     `json:"database_bytes"`
	Recordings     int       `json:"recordings"`
	RecordingBytes int64     `json:"recording_bytes"`
}

// Source is what Write backs up.
type Source struct {
	// DB is the live database; it is snapshotted with VACUUM INTO.
	DB *sql.DB
	// RecordingsDir holds the recordings; empty means none.
	RecordingsDir string
	// Keyring derives the signing key (and, without Recipients, the
	// encryption passphrase).
	Keyring *secrets.Keyring
	// Recipients, when set, encrypt to these age recipients instead of the
	// master-key-derived passphrase (restore then needs their identities).
	Recipients []age.Recipient
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Write writes a backup of src to out (mode 0600), atomically: out appears
// only when complete.
func Write(ctx context.Context, src Source, out string) (Manifest, error) {
	tmpDir, err := os.MkdirTemp(filepath.Dir(out), ".gatehouse-backup-")
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	snap := filepath.Join(tmpDir, databaseName)
	if _, err := src.DB.ExecContext(ctx, `VACUUM INTO ?`, snap); err != nil {
		return Manifest{}, fmt.Errorf("backup: snapshot the database: %w", err)
	}
	now := time.Now
	if src.Now != nil {
		now = src.Now
	}
	m := Manifest{Version: 1, Created: now().UTC().Truncate(time.Second)}
	if m.DatabaseSHA256, m.DatabaseBytes, err = hashFile(snap); err != nil {
		return Manifest{}, err
	}
	cipherFile := filepath.Join(tmpDir, "payload.age")
	if err := writePayload(src, snap, cipherFile, &m); err != nil {
		return Manifest{}, err
	}
	return m, sealFile(src.Keyring, cipherFile, out)
}

func hashFile(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("backup: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// writePayload encrypts the tar stream (database snapshot, recordings, and
// the manifest last, once the recordings are counted) into cipherFile.
func writePayload(src Source, snap, cipherFile string, m *Manifest) error {
	f, err := os.OpenFile(cipherFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	recipients := src.Recipients
	if len(recipients) == 0 {
		r, err := age.NewScryptRecipient(passphrase(src.Keyring))
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		r.SetWorkFactor(scryptWorkFactor)
		recipients = []age.Recipient{r}
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	enc, err := age.Encrypt(bw, recipients...)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tw := tar.NewWriter(enc)
	if err := addFile(tw, databaseName, snap, -1); err != nil {
		return err
	}
	if src.RecordingsDir != "" {
		if err := addRecordings(tw, src.RecordingsDir, m); err != nil {
			return err
		}
	}
	mj, _ := json.MarshalIndent(m, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(mj)), ModTime: m.Created}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := tw.Write(mj); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	for _, c := range []io.Closer{tw, enc} {
		if err := c.Close(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return f.Sync()
}

// addRecordings adds every regular file under dir. Recordings still being
// written are copied up to their size when seen: they are append-only and
// framed, so the copy reads as a recording cut at that point.
func addRecordings(tw *tar.Writer, dir string, m *Manifest) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return nil
			}
			return fmt.Errorf("backup: %w", err)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		m.Recordings++
		m.RecordingBytes += fi.Size()
		return addFile(tw, recordingsDir+filepath.ToSlash(rel), p, fi.Size())
	})
}

// addFile adds the first size bytes of file (size < 0: all of it).
func addFile(tw *tar.Writer, name, file string, size int64) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	if size < 0 {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		size = fi.Size()
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: time.Now().UTC()}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := io.CopyN(tw, f, size); err != nil {
		return fmt.Errorf("backup: copy %s: %w", name, err)
	}
	return nil
}

// sealFile signs cipherFile and writes header + ciphertext to out.
func sealFile(kr *secrets.Keyring, cipherFile, out string) error {
	sum, _, err := hashFile(cipherFile)
	if err != nil {
		return err
	}
	priv := signingKey(kr)
	sig := ed25519.Sign(priv, signedMessage(sum))
	tmp := out + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp)
	fmt.Fprintf(f, "%s\nsigner: %s\nsignature: %s\n\n", magic,
		base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), base64.StdEncoding.EncodeToString(sig))
	c, err := os.Open(cipherFile)
	if err != nil {
		f.Close()
		return fmt.Errorf("backup: %w", err)
	}
	_, err = io.Copy(f, c)
	c.Close()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: write %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func signingKey(kr *secrets.Keyring) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(kr.Derive(purposeSign))
}

// SignerPublicKey is the public half of the key that signs this gateway's
// backups (base64), for an operator to note down.
func SignerPublicKey(kr *secrets.Keyring) string {
	return base64.StdEncoding.EncodeToString(signingKey(kr).Public().(ed25519.PublicKey))
}

func passphrase(kr *secrets.Keyring) string {
	return base64.RawStdEncoding.EncodeToString(kr.Derive(purposeSeal))
}

func signedMessage(hexSum string) []byte { return []byte(signContext + hexSum) }

// header is a parsed backup header.
type header struct {
	signer, sig []byte
	offset      int64 // where the ciphertext starts
}

func readHeader(f *os.File) (header, error) {
	br := bufio.NewReaderSize(io.LimitReader(f, maxHeader), maxHeader)
	var h header
	var lines []string
	var n int64
	for {
		l, err := br.ReadString('\n')
		n += int64(len(l))
		if err != nil {
			return h, ErrNotBackup
		}
		l = strings.TrimSuffix(l, "\n")
		if l == "" {
			break
		}
		lines = append(lines, l)
	}
	if len(lines) != 3 || lines[0] != magic {
		return h, ErrNotBackup
	}
	var err1, err2 error
	h.signer, err1 = base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[1], "signer: "))
	h.sig, err2 = base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[2], "signature: "))
	if err1 != nil || err2 != nil || !strings.HasPrefix(lines[1], "signer: ") || !strings.HasPrefix(lines[2], "signature: ") {
		return h, ErrNotBackup
	}
	h.offset = n
	return h, nil
}

// Verify checks file's signature against the key kr derives and returns the
// open file positioned at the ciphertext.
func Verify(file string, kr *secrets.Keyring) (*os.File, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	h, err := readHeader(f)
	if err == nil {
		err = checkSignature(f, h, kr)
	}
	if err == nil {
		_, err = f.Seek(h.offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkSignature(f *os.File, h header, kr *secrets.Keyring) error {
	if _, err := f.Seek(h.offset, io.SeekStart); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	pub := signingKey(kr).Public().(ed25519.PublicKey)
	if !bytes.Equal(pub, h.signer) || !ed25519.Verify(pub, signedMessage(hex.EncodeToString(sum.Sum(nil))), h.sig) {
		return ErrBadSignature
	}
	return nil
}

// Target is where Restore writes.
type Target struct {
	// DBPath is the database file to create; it must not exist.
	DBPath string
	// RecordingsDir receives the recordings.
	RecordingsDir string
	// Keyring verifies the signature (and derives the passphrase when no
	// Identities are given).
	Keyring *secrets.Keyring
	// Identities decrypt a backup made to operator age recipients.
	Identities []age.Identity
}

// Restore verifies file and writes its database and recordings to dst. The
// database appears only after its hash matched the manifest; nothing is
// written when the signature does not verify.
func Restore(ctx context.Context, file string, dst Target) (Manifest, error) {
	if _, err := os.Stat(dst.DBPath); err == nil {
		return Manifest{}, ErrNotEmpty
	}
	if ents, err := os.ReadDir(dst.RecordingsDir); err == nil && len(ents) > 0 {
		return Manifest{}, ErrNotEmpty
	}
	f, err := Verify(file, dst.Keyring)
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	ids := dst.Identities
	if len(ids) == 0 {
		id, err := age.NewScryptIdentity(passphrase(dst.Keyring))
		if err != nil {
			return Manifest{}, fmt.Errorf("backup: %w", err)
		}
		id.SetMaxWorkFactor(scryptWorkFactor)
		ids = []age.Identity{id}
	}
	dec, err := age.Decrypt(bufio.NewReaderSize(f, 1<<20), ids...)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: cannot decrypt (wrong identity?): %w", err)
	}
	return extract(ctx, tar.NewReader(dec), dst)
}

// extract writes the archive into staging names (the database beside its
// final name, recordings in a sibling directory) and moves them into place
// only when the archive is complete and the database matches the manifest.
func extract(ctx context.Context, tr *tar.Reader, dst Target) (Manifest, error) {
	var m Manifest
	var dbSum string
	var seenManifest bool
	partial := dst.DBPath + ".restoring"
	recStage := strings.TrimRight(dst.RecordingsDir, "/") + ".restoring"
	defer os.Remove(partial)
	defer os.RemoveAll(recStage)
	for {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("backup: read archive: %w", err)
		}
		switch name := hd.Name; {
		case hd.Typeflag != tar.TypeReg:
			return m, fmt.Errorf("backup: unexpected entry %q in archive", name)
		case name == manifestName:
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&m); err != nil {
				return m, fmt.Errorf("backup: manifest: %w", err)
			}
			seenManifest = true
		case name == databaseName:
			if dbSum, err = writeOut(partial, tr); err != nil {
				return m, err
			}
		case strings.HasPrefix(name, recordingsDir):
			rel := strings.TrimPrefix(name, recordingsDir)
			if !filepath.IsLocal(rel) || path.Clean(rel) != rel {
				return m, fmt.Errorf("backup: refusing archive path %q", name)
			}
			if _, err := writeOut(filepath.Join(recStage, filepath.FromSlash(rel)), tr); err != nil {
				return m, err
			}
		default:
			return m, fmt.Errorf("backup: unexpected entry %q in archive", name)
		}
	}
	if !seenManifest || dbSum == "" || dbSum != m.DatabaseSHA256 {
		return m, errors.New("backup: the archive is incomplete or its database does not match the manifest; nothing was restored")
	}
	if m.Recordings > 0 {
		os.Remove(dst.RecordingsDir) // empty (checked), or absent
		if err := os.Rename(recStage, dst.RecordingsDir); err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
	}
	if err := os.Rename(partial, dst.DBPath); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// writeOut creates name (0600, directories 0700) from r and returns the
// SHA-256 of what it wrote. It never overwrites.
func writeOut(name string, r io.Reader) (string, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("backup: write %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
