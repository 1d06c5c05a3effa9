package e2e

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// decisionLog records the decisions the gateway asks policy for.
type decisionLog struct {
	mu   sync.Mutex
	reqs []policy.Request
}

func (l *decisionLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.reqs {
		out = append(out, r.Login+"@"+r.Target.Name+" "+strings.TrimSpace("["+r.Command+"]"))
	}
	l.reqs = nil
	return out
}

// TestOneDecisionPerRequest counts the policy decisions behind real ssh
// sessions: the connection's decision, made once when it is authenticated
// (may this user reach login@target, with which options — it gates the
// target connection dialled ahead of the first request), and exactly one
// for each request: an exec, a shell, a port forward. The dial and the
// relay use the decision they are handed; before this was shaped, one exec
// asked policy four times and one agent-forwarding shell five.
func TestOneDecisionPerRequest(t *testing.T) {
	w := newWorld(t, "")
	alice := w.newUser("alice", time.Hour)
	log := &decisionLog{}
	w.app.Policy.OnDecision(func(r policy.Request, _ policy.Decision) {
		log.mu.Lock()
		defer log.mu.Unlock()
		log.reqs = append(log.reqs, r)
	})
	defer w.app.Policy.OnDecision(nil)
	want := func(what string, want ...string) {
		t.Helper()
		if got := log.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: decisions\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	if r := alice.direct("root", "db-1", "true"); r.code != 0 {
		t.Fatalf("exec: %s", r)
	}
	want("ssh root@db-1 true", "root@db-1 []", "root@db-1 [true]")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := alice.cmd(ctx, "ssh", "-T", "-p", w.port, "root@db-1@127.0.0.1")
	c.Stdin = strings.NewReader("echo shell-ok\n")
	out, err := c.CombinedOutput()
	if err != nil || string(out) != "shell-ok\n" {
		t.Fatalf("shell: %v %q", err, out)
	}
	want("ssh root@db-1 (a shell)", "root@db-1 []", "root@db-1 []")

	if r := alice.run("ssh", "-J", "gw", "db-1", "true"); r.code != 0 {
		t.Fatalf("exec through ProxyJump: %s", r)
	}
	want("ssh -J gw db-1 true", "root@db-1 []", "root@db-1 [true]")

	// A port forward: one decision per forwarded connection.
	lport := freePort(t)
	fwd := alice.cmd(ctx, "ssh", "-N", "-L", "127.0.0.1:"+lport+":"+w.sshd.Addr, "-p", w.port, "root@db-1@127.0.0.1")
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { fwd.Process.Kill(); fwd.Wait() }()
	keyscan := func() bool {
		out, _ := exec.CommandContext(ctx, "ssh-keyscan", "-t", "ed25519", "-p", lport, "127.0.0.1").CombinedOutput()
		return strings.Contains(string(out), "ssh-ed25519")
	}
	waitFor(t, "an SSH banner through the forward", keyscan)
	got := log.take() // the connection's, then one per forwarded connection tried
	if len(got) < 2 || got[0] != "root@db-1 []" {
		t.Fatalf("forward: decisions %q", got)
	}
	if !keyscan() {
		t.Fatal("the forward stopped working")
	}
	want("one more connection through ssh -L", "root@db-1 []")
}
