package testenv

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package puts the browser.
const ChromiumPath = "/usr/bin/chromium"

// BrowserOptions configures NewBrowserWith. The zero value trusts no extra
// certificate.
type BrowserOptions struct {
	// TrustCerts are the test's own self-signed loopback server
	// certificates (e.g. httptest.Server.Certificate()). Chromium accepts
	// exactly these public keys despite their unknown issuer; every other
	// certificate error still fails the page load.
	TrustCerts []*x509.Certificate
}

// NewBrowser starts a headless Chromium with a fresh profile and returns a
// chromedp context for one tab. The browser is closed when the test ends.
func NewBrowser(t testing.TB) context.Context {
	t.Helper()
	return NewBrowserWith(t, BrowserOptions{})
}

// NewBrowserWith is NewBrowser with options.
func NewBrowserWith(t testing.TB, o BrowserOptions) context.Context {
	t.Helper()
	_, err := os.Stat(ChromiumPath)
	Require(t, "chromium", "apt-get install chromium", err == nil)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserFlags(t, o)...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not run under a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("testenv: start chromium: %v", err)
	}
	return ctx
}

// browserFlags are the flags Chromium needs as root in CI, and the ones
// that keep it from calling out to the (closed) network.
func browserFlags(t testing.TB, o BrowserOptions) []chromedp.ExecAllocatorOption {
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.WindowSize(1280, 900),
	}
	if spki := spkiList(o.TrustCerts); spki != "" {
		flags = append(flags, chromedp.Flag("ignore-certificate-errors-spki-list", spki))
	}
	return flags
}

// spkiList is the value of --ignore-certificate-errors-spki-list: base64
// SHA-256 hashes of the certificates' public keys.
func spkiList(certs []*x509.Certificate) string {
	var hashes []string
	for _, c := range certs {
		h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		hashes = append(hashes, base64.StdEncoding.EncodeToString(h[:]))
	}
	return strings.Join(hashes, ",")
}

// Step runs browser actions with a bound, failing the test with what went
// wrong and where the browser was.
func Step(t testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("browser: %s: %v (at %s)", what, err, loc)
	}
}

// Screenshot saves a full-page PNG of the tab in ctx to path (for a human
// to look at; tests assert on the page content, not on pixels).
func Screenshot(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("testenv: screenshot: %v", err)
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("testenv: screenshot: %v", err)
	}
}
