package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// syncBuffer is a log sink the test reads while the server writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// idpGateway is a whole Gatehouse (real SQLite, real CAs, real audit log)
// whose web front door logs in at the real OpenID Provider.
type idpGateway struct {
	app    *app.App
	op     *testenv.OIDCProvider
	public string // web.public_url
	log    *syncBuffer
	head   string // the configuration before the extra part
	path   string // the configuration file
}

// reload replaces the extra part of the configuration and reloads it.
func (g *idpGateway) reload(t *testing.T, extra string) {
	t.Helper()
	if err := os.WriteFile(g.path, []byte(g.head+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.app.Reload("test"); err != nil {
		t.Fatal(err)
	}
}

func startIdPGateway(t *testing.T) *idpGateway { return startIdPGatewayWith(t, "") }

// startIdPGatewayWith adds extra (top-level YAML: roles, bindings) to the
// configuration.
func startIdPGatewayWith(t *testing.T, extra string) *idpGateway {
	t.Helper()
	op := testenv.StartOIDCProvider(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	ln.Close()
	clientID := "gatehouse-" + strings.ReplaceAll(t.Name(), "/", "-")
	op.RegisterWebClient(clientID, "test-client-secret", public+"/oidc/callback")
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secretFile, []byte("test-client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf(`data_dir: %s/data
ssh:
  listen: "127.0.0.1:0"
web:
  listen: "127.0.0.1:0"
  public_url: %q
  insecure_http: true
oidc:
  issuer: %q
  client_id: %s
  client_secret_file: %q
`, dir, public, op.Issuer, clientID, secretFile)
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(head+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a, err := app.Start(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return &idpGateway{app: a, op: op, public: public, log: logs, head: head, path: path}
}

// serve runs one request through the web server's real handler.
func (g *idpGateway) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	g.app.Web.Handler().ServeHTTP(rec, req)
	return rec
}

// beginLogin starts a web login and returns the browser's state cookie and
// the provider's authorization URL.
func (g *idpGateway) beginLogin(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	rec := g.serve(httptest.NewRequest("GET", g.public+"/login", nil))
	if rec.Code != http.StatusFound {
		t.Fatalf("GET /login: %d %s", rec.Code, rec.Body)
	}
	var state *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "gh_login" {
			state = c
		}
	}
	if state == nil {
		t.Fatal("GET /login set no state cookie")
	}
	return state, rec.Header().Get("Location")
}

// loginAtIdP signs the provider's preset user in at the provider, as the
// browser would, and returns the code and state the provider sends back.
func (g *idpGateway) loginAtIdP(t *testing.T, authURL string) (code, state string) {
	t.Helper()
	var back *url.URL
	client := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), g.public+"/oidc/callback") {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("the provider did not show its login page: %s", resp.Request.URL)
	}
	resp, err = client.PostForm(g.op.Issuer+"/login/username", url.Values{"id": {id},
		"username": {testenv.OIDCUser}, "password": {testenv.OIDCPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if back == nil {
		t.Fatalf("the provider did not send the browser back: %d", resp.StatusCode)
	}
	return back.Query().Get("code"), back.Query().Get("state")
}

// callback delivers the provider's answer to the web server.
func (g *idpGateway) callback(cookie *http.Cookie, code, state string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", g.public+"/oidc/callback?"+url.Values{"code": {code}, "state": {state}}.Encode(), nil)
	req.AddCookie(cookie)
	return g.serve(req)
}

var genericLine = regexp.MustCompile(`internal error; the operator has the details \(ref ([0-9a-f]{8})\)`)

// checkGeneric asserts the page shows the generic line and none of leaks,
// and that the operator's log holds the detail under the page's reference.
func checkGeneric(t *testing.T, g *idpGateway, rec *httptest.ResponseRecorder, detail string, leaks ...string) {
	t.Helper()
	body := rec.Body.String()
	m := genericLine.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("status %d, page does not show the generic line:\n%s", rec.Code, body)
	}
	for _, l := range leaks {
		if strings.Contains(strings.ToLower(body), strings.ToLower(l)) {
			t.Fatalf("the page leaks %q:\n%s", l, body)
		}
	}
	for _, line := range strings.Split(g.log.String(), "\n") {
		if strings.Contains(line, "ref="+m[1]) && strings.Contains(line, detail) {
			return
		}
	}
	t.Fatalf("no log line has ref=%s and %q:\n%s", m[1], detail, g.log.String())
}

// A failed token exchange (the provider refuses the code) shows the
// generic line in the browser; what the token endpoint said is only logged.
func TestTokenExchangeFailureIsNotShown(t *testing.T) {
	g := startIdPGateway(t)
	cookie, _ := g.beginLogin(t)
	rec := g.callback(cookie, "forged-authorization-code", cookie.Value)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", rec.Code)
	}
	checkGeneric(t, g, rec, "code exchange failed", "oauth2", "invalid_grant", "code exchange", "token")
}

// A database that fails under a login (closed after the provider said yes)
// shows the generic line; the SQL error is only logged.
func TestDatabaseFailureIsNotShown(t *testing.T) {
	g := startIdPGateway(t)
	cookie, authURL := g.beginLogin(t)
	code, state := g.loginAtIdP(t, authURL)
	if err := g.app.Env.DB.Close(); err != nil {
		t.Fatal(err)
	}
	rec := g.callback(cookie, code, state)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", rec.Code)
	}
	checkGeneric(t, g, rec, "database is closed", "sql", "database")
}

// The same login with the database up gets past the callback: the failure
// above is the database's, not the test's.
func TestLoginAtIdPReachesTOTP(t *testing.T) {
	g := startIdPGateway(t)
	cookie, authURL := g.beginLogin(t)
	code, state := g.loginAtIdP(t, authURL)
	rec := g.callback(cookie, code, state)
	if rec.Code != http.StatusFound || !strings.HasPrefix(rec.Header().Get("Location"), "/mfa") {
		body, _ := io.ReadAll(rec.Body)
		t.Fatalf("callback: %d %s %s", rec.Code, rec.Header().Get("Location"), body)
	}
}
