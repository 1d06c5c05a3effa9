package web

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/config"
)

func TestLocalPath(t *testing.T) {
	tests := map[string]string{
		"/approve/ABCD-1234":  "/approve/ABCD-1234",
		"/cli/login?x=1":      "/cli/login?x=1",
		"":                    "/",
		"https://evil.test/":  "/",
		"//evil.test/x":       "/",
		"/\\evil.test":        "/",
		"javascript:alert(1)": "/",
		"/ok\r\nSet-Cookie:":  "/",
	}
	for in, want := range tests {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAllowedRedirect(t *testing.T) {
	s := &Server{opts: Options{Config: &config.Config{OIDC: config.OIDC{AllowedRedirects: []string{"https://tools.example.com/gatehouse/"}}}}}
	tests := map[string]bool{
		"http://127.0.0.1:53211/callback":               true,
		"http://localhost:4000/callback":                true,
		"http://127.0.0.1/callback":                     false, // no port: not a CLI listener
		"https://127.0.0.1:443/callback":                false,
		"http://evil.test:8080/callback":                false,
		"http://127.0.0.1:5000@evil.test/":              false,
		"https://tools.example.com/gatehouse/done":      true,
		"https://tools.example.com/gatehouse.evil.test": false,
		"https://tools.example.com/gatehouse/x#frag":    false,
		"": false,
	}
	for in, want := range tests {
		if got := s.allowedRedirect(in); got != want {
			t.Errorf("allowedRedirect(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzRedirects(f *testing.F) {
	for _, s := range []string{"/x", "//evil", "http://127.0.0.1:1/cb", "http://127.0.0.1:1@evil/", "https://tools.example.com/gatehouse/a"} {
		f.Add(s)
	}
	s := &Server{opts: Options{Config: &config.Config{OIDC: config.OIDC{AllowedRedirects: []string{"https://tools.example.com/gatehouse/"}}}}}
	f.Fuzz(func(t *testing.T, in string) {
		if p := localPath(in); !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
			t.Fatalf("localPath(%q) = %q leaves the site", in, p)
		}
		if s.allowedRedirect(in) && !strings.HasPrefix(in, "http://127.0.0.1:") && !strings.HasPrefix(in, "http://localhost:") &&
			!strings.HasPrefix(in, "http://[::1]:") && !strings.HasPrefix(in, "https://tools.example.com/gatehouse/") {
			t.Fatalf("allowedRedirect(%q) accepted a foreign URL", in)
		}
	})
}
