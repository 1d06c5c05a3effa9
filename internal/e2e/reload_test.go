package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPolicyReloadSIGHUPAndWatchedFile runs a real `gatehouse serve`: a
// binding added to the file and a SIGHUP let a refused user in; a file that
// fails validation keeps the old policy and says why in the audit log; a
// change to the watched file applies with no signal. Each reload is audited
// with what changed.
func TestPolicyReloadSIGHUPAndWatchedFile(t *testing.T) {
	bin := gatehouseBinary(t)
	w := newWorldWith(t, "", "watch_config: 300ms\n")
	carol := w.newUser("carol", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.app.Close(ctx) // hand the data directory to a real process
	cancel()
	gw, port := serveProcess(t, bin, w.configFile)
	ssh := func() result { return carol.run("ssh", "-p", port, "root@db-1@127.0.0.1", "echo reloaded") }
	if r := ssh(); r.code == 0 || !strings.Contains(r.stderr, "access denied") {
		t.Fatalf("before the reload: %s", r)
	}
	orig, _ := os.ReadFile(w.configFile)
	const before = "  - user: carol\n    roles: [nobody-login]\n"
	if !strings.Contains(string(orig), before) {
		t.Fatal("the test configuration changed; update this test")
	}
	// The CLI reads its own copy: the served file is broken on purpose below.
	cliCfg := filepath.Join(filepath.Dir(w.configFile), "cli.yaml")
	os.WriteFile(cliCfg, orig, 0o600)
	auditTail := func() string {
		out, err := exec.Command(bin, "audit", "tail", "-n", "20", "--config", cliCfg).CombinedOutput()
		if err != nil {
			t.Fatalf("gatehouse audit tail: %v\n%s", err, out)
		}
		return string(out)
	}
	replaceFile := func(content string, keepMtime bool) {
		fi, _ := os.Stat(w.configFile)
		tmp := filepath.Join(filepath.Dir(w.configFile), "next.yaml")
		os.WriteFile(tmp, []byte(content), 0o600)
		if keepMtime { // invisible to the watcher: only SIGHUP reloads it
			os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
		}
		if err := os.Rename(tmp, w.configFile); err != nil {
			t.Fatal(err)
		}
	}

	// 1. SIGHUP applies a new binding.
	granted := strings.Replace(string(orig), before, "  - user: carol\n    roles: [nobody-login, viewer]\n", 1)
	replaceFile(granted, true)
	gw.Process.Signal(syscall.SIGHUP)
	waitFor(t, "carol's login after SIGHUP", func() bool { r := ssh(); return r.code == 0 && r.stdout == "reloaded\n" })
	waitFor(t, "the reload's audit event", func() bool {
		return strings.Contains(auditTail(), "policy reloaded (SIGHUP): bindings changed: user:carol")
	})

	// 2. A file that fails validation changes nothing and says why.
	replaceFile(strings.Replace(granted, "roles: [nobody-login, viewer]", "roles: [viewer, ghost]", 1), false)
	waitFor(t, "the refused reload's audit event", func() bool {
		tail := auditTail()
		return strings.Contains(tail, "policy reload (file changed) refused, the previous policy stays") && strings.Contains(tail, `unknown role \"ghost\"`)
	})
	if r := ssh(); r.code != 0 || r.stdout != "reloaded\n" {
		t.Fatalf("a broken file changed the policy: %s", r)
	}

	// 3. The watched file: back to the original, no signal; carol is refused again.
	replaceFile(string(orig), false)
	waitFor(t, "carol refused after the watched change", func() bool { r := ssh(); return r.code != 0 && strings.Contains(r.stderr, "access denied") })
	if tail := auditTail(); !strings.Contains(tail, "policy reloaded (file changed): bindings changed: user:carol") {
		t.Fatalf("audit after the watched reload:\n%s", tail)
	}
}
