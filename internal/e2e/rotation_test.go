package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// TestSessionCARotation rotates the session CA of a running gateway with
// the real CLI: the target is given both keys during the overlap, keeps
// accepting sessions before and after the switch (sshd names the CA that
// signed each one), and trusts only the new key once the old is retired.
func TestSessionCARotation(t *testing.T) {
	bin := gatehouseBinary(t)
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	trusted := filepath.Join(w.sshd.Dir, "gatehouse_session_ca.pub")
	keyIDs := func() (active, next string) {
		for _, line := range strings.Split(w.cli(t, bin, "ca", "public"), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == "session" {
				switch f[2] {
				case "active":
					active = f[1]
				case "next":
					next = f[1]
				}
			}
		}
		return active, next
	}
	// sshd's "Accepted publickey ... CA ED25519 <id>" line, once per login.
	signedBy := func(keyID string) int {
		re := regexp.MustCompile(`(?m)Accepted publickey for root .* CA ED25519 ` + regexp.QuoteMeta(keyID) + `\s*$`)
		return len(re.FindAllString(w.sshd.Log(), -1))
	}
	session := func(what string) {
		t.Helper()
		if r := alice.run("ssh", "db-1", "echo "+what); r.code != 0 || r.stdout != what+"\n" {
			t.Fatalf("%s: %s", what, r)
		}
	}

	oldID, _ := keyIDs()
	session("before")
	if signedBy(oldID) != 1 {
		t.Fatalf("first session not signed by the original session CA %s:\n%s", oldID, w.sshd.Log())
	}

	out := w.cli(t, bin, "ca", "rotate", "--session", "--overlap", "4s")
	m := regexp.MustCompile(`next session CA key (SHA256:\S+), signing from`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ca rotate: %q", out)
	}
	newID := m[1]
	if a, n := keyIDs(); a != oldID || n != newID {
		t.Fatalf("ca public during the overlap: active %s next %s, want %s and %s", a, n, oldID, newID)
	}
	both := w.cli(t, bin, "ca", "public", "--target")
	if strings.Count(both, "gatehouse-session-ca\n") != 2 {
		t.Fatalf("ca public --target during the overlap prints %q, want both keys", both)
	}
	os.WriteFile(trusted, []byte(both), 0o644) // the target is given both keys

	// The running gateway switches once the overlap is over.
	waitFor(t, "the switch to the next session CA key", func() bool {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventAdminChange, Text: "the session CA now signs with its next key"})
		return len(evs) == 1
	})
	session("after")
	if signedBy(newID) != 1 {
		t.Fatalf("session after the switch not signed by the new key %s:\n%s", newID, w.sshd.Log())
	}

	w.cli(t, bin, "ca", "rotate", "--session", "--retire")
	only := w.cli(t, bin, "ca", "public", "--target")
	if newLine := strings.SplitAfter(both, "\n")[1]; only != newLine {
		t.Fatalf("ca public --target after retiring prints %q, want only the new key %q", only, newLine)
	}
	os.WriteFile(trusted, []byte(only), 0o644)
	session("retired")
	if signedBy(newID) != 2 {
		t.Fatalf("session after retiring not signed by the new key:\n%s", w.sshd.Log())
	}
	if list := w.cli(t, bin, "ca", "public"); !regexp.MustCompile(`(?m)^session +`+regexp.QuoteMeta(oldID)+` +retired`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^session +`+regexp.QuoteMeta(newID)+` +active`).MatchString(list) {
		t.Fatalf("ca public does not show the old key retired and the new one active:\n%s", list)
	}
}
