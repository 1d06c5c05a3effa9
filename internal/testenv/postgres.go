package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// PostgresBin is where Debian's postgresql-15 puts its server programs.
const PostgresBin = "/usr/lib/postgresql/15/bin"

// Postgres is a private PostgreSQL cluster on a loopback port, run as the
// postgres user (initdb refuses root) in a directory it owns, reachable only
// over TLS with a certificate from a test CA, with password (SCRAM) login
// for one role.
type Postgres struct {
	Dir      string // cluster directory (data, socket, log, CA)
	Port     string
	CAFile   string // the test CA that signed the server certificate
	User     string
	Password string
}

var (
	sharedPGMu sync.Mutex
	sharedPG   *Postgres
)

// SharedPostgres returns one cluster per test binary, starting it on first
// use. Call StopSharedPostgres from TestMain once the tests are done.
func SharedPostgres(t testing.TB) *Postgres {
	t.Helper()
	sharedPGMu.Lock()
	defer sharedPGMu.Unlock()
	if sharedPG != nil {
		return sharedPG
	}
	RequirePostgres(t)
	pg, err := startPostgres()
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	sharedPG = pg
	return pg
}

// StopSharedPostgres stops the shared cluster, if one was started, and
// removes its directory.
func StopSharedPostgres() {
	sharedPGMu.Lock()
	defer sharedPGMu.Unlock()
	if sharedPG != nil {
		sharedPG.stop()
		sharedPG = nil
	}
}

// StartPostgres starts a cluster for one test and stops it at cleanup.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	RequirePostgres(t)
	pg, err := startPostgres()
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(pg.stop)
	return pg
}

// RequirePostgres requires Debian's PostgreSQL 15 server and a postgres
// system user.
func RequirePostgres(t testing.TB) {
	t.Helper()
	_, err := os.Stat(filepath.Join(PostgresBin, "postgres"))
	_, uerr := user.Lookup("postgres")
	Require(t, "PostgreSQL 15 server", "apt-get install postgresql", err == nil && uerr == nil)
}

func startPostgres() (*Postgres, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "gatehouse-pg-")
	if err != nil {
		return nil, err
	}
	pg := &Postgres{Dir: dir, User: "gatehouse", Password: randomHex(16)}
	data := filepath.Join(dir, "data")
	if err := os.Chown(dir, uid, gid); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte(pg.Password+"\n"), 0o600)
	os.Chown(pwFile, uid, gid)
	if out, err := asPostgres(filepath.Join(PostgresBin, "initdb"), "-D", data, "-U", pg.User, "--pwfile", pwFile,
		"-A", "scram-sha-256", "-E", "UTF8", "--locale", "C").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := pg.writeTLS(data, uid, gid); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// Only TLS connections from loopback, with a password.
	hba := "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
	os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600)
	os.Chown(filepath.Join(data, "pg_hba.conf"), uid, gid)
	return pg, pg.start(data)
}

// start picks a free port and starts the server, retrying if another
// process took the port in between.
func (pg *Postgres) start(data string) error {
	var last error
	for range 5 {
		port, err := freeTCPPort()
		if err != nil {
			return err
		}
		pg.Port = port
		opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c ssl=on -c max_connections=300 -c fsync=off", port, pg.Dir)
		out, err := asPostgres(filepath.Join(PostgresBin, "pg_ctl"), "-D", data, "-o", opts, "-l",
			filepath.Join(pg.Dir, "log"), "-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			return nil
		}
		log, _ := os.ReadFile(filepath.Join(pg.Dir, "log"))
		last = fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	os.RemoveAll(pg.Dir)
	return last
}

func (pg *Postgres) stop() {
	asPostgres(filepath.Join(PostgresBin, "pg_ctl"), "-D", filepath.Join(pg.Dir, "data"), "-m", "immediate", "-w", "stop").Run()
	os.RemoveAll(pg.Dir)
}

// Restart stops the server (immediately, as a crash would) and starts it
// again on the same port.
func (pg *Postgres) Restart(t testing.TB) {
	t.Helper()
	pg.Stop(t)
	pg.Start(t)
}

// Stop stops the server immediately, as a crash would; Start brings it back.
func (pg *Postgres) Stop(t testing.TB) {
	t.Helper()
	data := filepath.Join(pg.Dir, "data")
	if out, err := asPostgres(filepath.Join(PostgresBin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Start starts a server stopped with Stop again, on the same port.
func (pg *Postgres) Start(t testing.TB) {
	t.Helper()
	data := filepath.Join(pg.Dir, "data")
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c ssl=on -c max_connections=300 -c fsync=off", pg.Port, pg.Dir)
	if out, err := asPostgres(filepath.Join(PostgresBin, "pg_ctl"), "-D", data, "-o", opts, "-l",
		filepath.Join(pg.Dir, "log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
}

// URL returns a connection URL for database db with full certificate
// verification against the test CA, as production defaults to.
func (pg *Postgres) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pg.User, pg.Password), Host: "127.0.0.1:" + pg.Port, Path: "/" + db}
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {pg.CAFile}}
	u.RawQuery = q.Encode()
	return u.String()
}

// NewDatabase creates a fresh database for one test and returns its URL.
func (pg *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := "gh_" + randomHex(6)
	cmd := exec.Command("psql", "-h", pg.Dir, "-p", pg.Port, "-U", pg.User, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
		"-c", "CREATE DATABASE "+name)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pg.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("create database: %v\n%s", err, out)
	}
	return pg.URL(name)
}

func asPostgres(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", prog}, args...)...)
	cmd.Dir = "/"
	return cmd
}

// writeTLS makes a test CA and a server certificate for 127.0.0.1 and
// localhost, and configures the cluster to use them.
func (pg *Postgres) writeTLS(data string, uid, gid int) error {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Gatehouse test CA (tests only)"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	pg.CAFile = filepath.Join(pg.Dir, "ca.crt")
	files := []struct {
		name  string
		block *pem.Block
	}{
		{pg.CAFile, &pem.Block{Type: "CERTIFICATE", Bytes: caDER}},
		{filepath.Join(data, "server.crt"), &pem.Block{Type: "CERTIFICATE", Bytes: srvDER}},
		{filepath.Join(data, "server.key"), &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}},
	}
	for _, f := range files {
		if err := os.WriteFile(f.name, pem.EncodeToMemory(f.block), 0o600); err != nil {
			return err
		}
		os.Chown(f.name, uid, gid)
	}
	os.Chmod(pg.CAFile, 0o644)
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func freeTCPPort() (string, error) {
	addr, err := FreePort()
	if err != nil {
		return "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	return port, nil
}
