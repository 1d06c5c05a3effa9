package web_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestPagesFollowReload: after a reload, the pages show the reloaded file's
// targets and roles — the targets page lists a target added by the reload
// and no longer the removed one, and the policy page the new role.
func TestPagesFollowReload(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	policyWith := func(target, role string) string {
		return fmt.Sprintf(`targets:
  - name: %s
    kind: ssh
    address: 127.0.0.1:1
    host_key: %q
roles:
  - name: web-admins
    options: {permissions: [admin, auditor]}
  - name: %s
    allow:
      targets: {names: [%s]}
      logins: [root]
bindings:
  - user: %s
    roles: [web-admins]
`, target, hostKey, role, target, testenv.OIDCUser)
	}
	g := startIdPGatewayWith(t, policyWith("db-before", "role-before"))
	sess, _ := g.browserLogin(t)
	page := func(path string) string {
		t.Helper()
		rec := g.get(sess, path)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	if body := page("/admin/targets"); !strings.Contains(body, "db-before") {
		t.Fatalf("targets page before the reload lacks db-before:\n%s", body)
	}
	g.reload(t, policyWith("db-after", "role-after"))
	body := page("/admin/targets")
	if !strings.Contains(body, "db-after") || strings.Contains(body, "db-before") {
		t.Fatalf("targets page after the reload (want db-after, not db-before):\n%s", body)
	}
	if body := page("/admin/policy"); !strings.Contains(body, "role-after") || strings.Contains(body, "role-before") {
		t.Fatalf("policy page after the reload (want role-after, not role-before):\n%s", body)
	}
}
