package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

func init() {
	register(command{name: "request", summary: "ask for a requestable role for a while (just-in-time access); opens the request in your browser", run: runRequest})
}

// runRequest files a just-in-time access request. The CLI holds no web
// session and its SSH certificate is not a web credential, so it does not
// file the request itself: it opens the gateway's request page pre-filled,
// where the signed-in user (OIDC + TOTP) submits it. Nothing is created by
// opening the URL (GET only fills the form; the POST needs the session's
// CSRF token), so a link sent by someone else cannot file a request.
func runRequest(args []string, stdout, stderr io.Writer) error {
	fs, _ := newFlags("request", stderr)
	role := fs.String("role", "", "the requestable role to ask for")
	dur := fs.Duration("for", time.Hour, "how long the access is needed (e.g. 30m, 2h)")
	reason := fs.String("reason", "", "why (shown to reviewers and audited)")
	gw := fs.String("gateway", "", "the gateway's web URL (default: the one of gatehouse login)")
	noBrowser := fs.Bool("no-browser", false, "only print the URL")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *role == "" || strings.TrimSpace(*reason) == "" {
		fmt.Fprintln(stderr, "usage: gatehouse request --role ROLE --for 1h --reason 'why'")
		return errUsage
	}
	if *dur < policy.MinRequestTTL {
		return fmt.Errorf("--for: ask for at least %s", policy.MinRequestTTL)
	}
	base := strings.TrimRight(*gw, "/")
	if base == "" {
		_, st, err := loadLogin()
		if err != nil {
			return err
		}
		base = strings.TrimRight(st.Gateway, "/")
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("--gateway %q: want the gateway's web URL, e.g. https://gw.example.com:8443", base)
	}
	v := url.Values{"role": {*role}, "for": {dur.String()}, "reason": {*reason}}
	u := base + "/requests?" + v.Encode()
	fmt.Fprintf(stdout, "Open this URL to submit your request (it also opens in your browser if one is available):\n\n  %s\n\nReviewers see it once you press \"Request access\"; the page shows every step.\n", u)
	if !*noBrowser {
		openBrowser(u)
	}
	return nil
}
