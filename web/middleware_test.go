package web_test

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// browserLogin logs the provider's preset user in through the real IdP and
// TOTP enrolment, as a browser would, and returns the session cookie and
// the session's CSRF token.
func (g *idpGateway) browserLogin(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	state, authURL := g.beginLogin(t)
	code, st := g.loginAtIdP(t, authURL)
	rec := g.callback(state, code, st)
	var sess *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "gh_session" {
			sess = c
		}
	}
	if rec.Code != http.StatusFound || sess == nil {
		t.Fatalf("callback: %d %s", rec.Code, rec.Body)
	}
	page := g.get(sess, "/mfa").Body.String()
	secret := regexp.MustCompile(`<code id="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(page)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if secret == nil || csrf == nil {
		t.Fatalf("the TOTP enrolment page has no secret or CSRF token:\n%s", page)
	}
	totpCode, err := totp.GenerateCode(secret[1], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	token := html.UnescapeString(csrf[1])
	rec = g.post(sess, "/mfa", url.Values{"csrf": {token}, "enrol": {"1"}, "code": {totpCode}, "next": {"/"}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "recovery-codes") {
		t.Fatalf("TOTP enrolment: %d %s", rec.Code, rec.Body)
	}
	return sess, token
}

func (g *idpGateway) get(c *http.Cookie, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", g.public+path, nil)
	if c != nil {
		req.AddCookie(c)
	}
	return g.serve(req)
}

func (g *idpGateway) post(c *http.Cookie, path string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", g.public+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		req.AddCookie(c)
	}
	return g.serve(req)
}

// TestWhoMayUseWhichPage crosses the web's page boundaries with what each
// side holds — no session, a verified session without web permissions, an
// admin's session without its CSRF token, an admin's session after a lock
// — against the routes as registered, and checks the exact outcome.
func TestWhoMayUseWhichPage(t *testing.T) {
	user := testenv.OIDCUser
	g := startIdPGatewayWith(t, `roles:
  - name: web-admins
    options: {permissions: [admin]}
bindings:
  - user: someone-else
    roles: [web-admins]
`)
	sess, csrf := g.browserLogin(t)
	type want struct {
		code     int
		location string // prefix of the redirect, if any
		body     string // substring of the page, if any
	}
	check := func(t *testing.T, what string, rec *httptest.ResponseRecorder, w want) {
		t.Helper()
		if rec.Code != w.code || !strings.HasPrefix(rec.Header().Get("Location"), w.location) ||
			!strings.Contains(rec.Body.String(), w.body) {
			t.Fatalf("%s: %d %q %s; want %d %q %q", what, rec.Code, rec.Header().Get("Location"), rec.Body, w.code, w.location, w.body)
		}
	}
	lock := url.Values{"csrf": {csrf}, "reason": {"test"}, "for": {"1h"}}

	t.Run("no session", func(t *testing.T) {
		for _, path := range []string{"/sessions", "/requests", "/overview", "/admin/users", "/audit"} {
			check(t, "GET "+path, g.get(nil, path), want{http.StatusFound, "/login?next=" + url.QueryEscape(path), ""})
		}
		check(t, "POST lock", g.post(nil, "/admin/users/mallory/lock", lock), want{http.StatusFound, "/login?next=", ""})
	})
	t.Run("verified, no web permissions", func(t *testing.T) {
		check(t, "GET /sessions", g.get(sess, "/sessions"), want{http.StatusOK, "", "Sessions"})
		for _, path := range []string{"/overview", "/admin/users", "/admin/policy", "/admin/targets", "/audit", "/audit/export"} {
			check(t, "GET "+path, g.get(sess, path), want{http.StatusNotFound, "", "not found"})
		}
		check(t, "POST lock", g.post(sess, "/admin/users/mallory/lock", lock), want{http.StatusForbidden, "", "Only admins can lock users."})
		if _, locked := g.app.Locks.Locked(context.Background(), "mallory"); locked {
			t.Fatal("a user without the admin permission locked someone")
		}
		check(t, "POST /requests without CSRF", g.post(sess, "/requests", url.Values{"role": {"x"}}),
			want{http.StatusForbidden, "", "This form expired; reload the page."})
	})

	// The same person becomes an admin (configuration reloaded); the
	// session now passes, but never without the form's CSRF token.
	g.reload(t, `roles:
  - name: web-admins
    options: {permissions: [admin]}
bindings:
  - user: `+user+`
    roles: [web-admins]
`)
	t.Run("admin", func(t *testing.T) {
		check(t, "GET /admin/users", g.get(sess, "/admin/users"), want{http.StatusOK, "", user})
		noCSRF := url.Values{"reason": {"test"}, "for": {"1h"}}
		check(t, "POST lock without CSRF", g.post(sess, "/admin/users/mallory/lock", noCSRF), want{http.StatusForbidden, "", "Only admins can lock users."})
		check(t, "POST lock", g.post(sess, "/admin/users/mallory/lock", lock), want{http.StatusSeeOther, "/admin/users", ""})
		if _, locked := g.app.Locks.Locked(context.Background(), "mallory"); !locked {
			t.Fatal("the admin's lock did not take")
		}
	})
	t.Run("locked admin", func(t *testing.T) {
		if err := g.app.Locks.Lock(context.Background(), user, "incident", "test", time.Hour); err != nil {
			t.Fatal(err)
		}
		check(t, "GET /admin/users", g.get(sess, "/admin/users"), want{http.StatusFound, "/login?next=", ""})
		check(t, "POST unlock self", g.post(sess, "/admin/users/"+user+"/unlock", url.Values{"csrf": {csrf}}), want{http.StatusFound, "/login?next=", ""})
		check(t, "POST unlock mallory", g.post(sess, "/admin/users/mallory/unlock", url.Values{"csrf": {csrf}}), want{http.StatusFound, "/login?next=", ""})
		if _, locked := g.app.Locks.Locked(context.Background(), user); !locked {
			t.Fatal("a locked admin lifted their own lock")
		}
		if _, locked := g.app.Locks.Locked(context.Background(), "mallory"); !locked {
			t.Fatal("a locked admin lifted someone's lock")
		}
	})
}
