package web

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"html/template"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
)

// dataURL marks a data: URL we built ourselves as safe for img src.
func dataURL(s string) template.URL { return template.URL(s) }

// loadOrCreateTLS loads web.tls_cert_file/tls_key_file, or a self-signed
// certificate kept in data_dir (created on first start, fingerprint logged).
func loadOrCreateTLS(cfg *config.Config, log *slog.Logger) (tls.Certificate, error) {
	if cfg.Web.TLSCertFile != "" {
		return tls.LoadX509KeyPair(cfg.Web.TLSCertFile, cfg.Web.TLSKeyFile)
	}
	certFile, keyFile := filepath.Join(cfg.DataDir, "web-tls.crt"), filepath.Join(cfg.DataDir, "web-tls.key")
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		logFingerprint(log, c)
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "Gatehouse"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(2, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	if u, err := url.Parse(cfg.Web.PublicURL); err == nil && u.Hostname() != "" {
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, u.Hostname())
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil {
		logFingerprint(log, c)
	}
	return c, err
}

func logFingerprint(log *slog.Logger, c tls.Certificate) {
	sum := sha256.Sum256(c.Certificate[0])
	log.Info("web TLS certificate (self-signed unless configured)", "sha256", fmt.Sprintf("%X", sum[:]))
}
