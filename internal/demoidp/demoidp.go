// Package demoidp runs the demo's (and the tests') OpenID Provider — the
// zitadel/oidc example server with its preset users — dressed in the
// Gatehouse look, so the demo's login page reads like the rest of the UI.
// It is for demos and tests only: the preset users have fixed passwords.
package demoidp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

// Handler is the example OpenID Provider for issuer, with its login pages
// restyled.
func Handler(issuer string) http.Handler {
	return Style(exampleop.SetupServer(issuer, storage.NewStorage(storage.NewUserStore(issuer)), nil, false))
}

// RegisterClient registers a confidential web client with its redirect URIs.
func RegisterClient(id, secret string, redirectURIs ...string) {
	storage.RegisterClients(storage.WebClient(id, secret, redirectURIs...))
}

// Style restyles the HTML pages of the provider's login UI (paths under
// /login/): a language, a viewport, the Gatehouse header and stylesheet.
// Other responses (discovery, keys, tokens) pass through untouched.
func Style(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/login/") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || bytes.HasPrefix(bytes.TrimSpace(body), []byte("<!DOCTYPE html>")) {
			body = restyle(body)
			rec.Header().Del("Content-Length")
			rec.Header().Set("Content-Type", "text/html; charset=utf-8")
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	})
}

// restyle edits the example's login template in place.
func restyle(b []byte) []byte {
	s := string(b)
	s = strings.Replace(s, "<html>", `<html lang="en">`, 1)
	s = strings.Replace(s, "<title>Login</title>", `<title>Log in · Demo identity provider</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>`+css+`</style>`, 1)
	if i := strings.Index(s, "<body"); i >= 0 {
		if j := strings.Index(s[i:], ">"); j >= 0 {
			at := i + j + 1
			s = s[:at] + `<header><span class="brand">Gatehouse</span> <span class="idp">demo identity provider</span></header><main><h1>Log in</h1>
<p class="hint">Demo users: <code>test-user2</code> / <code>verysecure</code>.</p>` + s[at:]
		}
	}
	s = strings.Replace(s, "</body>", "</main></body>", 1)
	s = strings.Replace(s, `<button type="submit">Login</button>`, `<button type="submit">Log in</button>`, 1)
	return []byte(s)
}

// css overrides the example template's inline layout with the web UI's look.
const css = `
body { margin: 0; display: block !important; height: auto !important; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2433; background: #f4f6f9; }
header { background: #111827; color: #fff; padding: 0.55rem 1.5rem; }
header .brand { font-weight: 700; }
header .idp { color: #cbd5e1; margin-left: 0.6rem; }
main { max-width: 24rem; margin: 2.5rem auto; background: #fff; border: 1px solid #d9dee7; border-radius: 8px; padding: 1.2rem 1.4rem; }
h1 { font-size: 1.4rem; margin: 0 0 0.4rem; }
.hint { color: #555e6e; margin: 0 0 1rem; }
form { height: auto !important; width: auto !important; }
form div { margin-bottom: 0.8rem; }
label { display: block; font-weight: 600; margin-bottom: 0.2rem; }
input { font-size: 1rem; padding: 0.45rem 0.6rem; border: 1px solid #8a93a3; border-radius: 6px; width: 100%; box-sizing: border-box; }
p[style] { color: #b42318 !important; min-height: 0 !important; margin: 0.2rem 0 0.8rem; }
button { background: #2456d6; color: #fff; border: 0; border-radius: 6px; padding: 0.5rem 1.2rem; font-size: 1rem; cursor: pointer; }
button:hover { background: #1a43a8; }
:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
code { font-family: ui-monospace, monospace; }
@media (max-width: 700px) { main { margin: 1rem 0.6rem; } }
`
