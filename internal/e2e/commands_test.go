package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// rita holds only the role "runner": on db-1 as root she may run `echo *`,
// `ls <dir>/probe *`, `printenv SSH_ORIGINAL_COMMAND` and the one shell line
// `echo piped | tr a-z A-Z` — and the role also sets sftp, port_forwarding
// and agent_forwarding, which a command restriction must override.

// TestCommandEscapesRunNothing tries each shell escape on an allowed command
// prefix, with real ssh through the gateway to a real sshd: each is refused
// with its exact one-line reason, the marker file the escape would create
// does not exist afterwards, and the refusal is audited with the command.
func TestCommandEscapesRunNothing(t *testing.T) {
	w := newWorld(t, "")
	rita := w.newUser("rita", time.Hour)
	probe := filepath.Join(w.dir, "probe")
	os.Mkdir(probe, 0o755)
	os.WriteFile(filepath.Join(probe, "seen-by-ls"), nil, 0o644)
	marker := filepath.Join(w.dir, "pwned")
	ls := "ls " + probe
	syntax := func(cmd, char, what string) string {
		return fmt.Sprintf("gatehouse: access denied: command refused: '%s' is shell syntax (%s) at byte %d; only plain arguments are allowed\r\n",
			char, what, strings.Index(cmd, char))
	}
	escapes := []struct {
		name, cmd, char, what string
	}{
		{"command list", ls + "; touch " + marker, ";", "command list"},
		{"substitution", "ls $(touch " + marker + ")", "$", "substitution or expansion"},
		{"substitution in an allowed argument", "echo \"$(touch " + marker + ")\"", "$", "substitution or expansion"},
		{"backticks", "echo `touch " + marker + "`", "`", "command substitution"},
		{"and", ls + " && touch " + marker, "&", "background or command list"},
		{"or", "ls /nonexistent || touch " + marker, "|", "pipe"},
		{"pipe", "echo x | touch " + marker, "|", "pipe"},
		{"background", "echo x & touch " + marker, "&", "background or command list"},
		{"newline", ls + "\ntouch " + marker, "\n", "newline (second command)"},
		{"redirect out", "echo pwned > " + marker, ">", "redirection"},
		{"redirect append", "echo pwned >>" + marker, ">", "redirection"},
		{"subshell", "echo (touch " + marker + ")", "(", "subshell"},
	}
	for _, tt := range escapes {
		t.Run(tt.name, func(t *testing.T) {
			want := syntax(tt.cmd, tt.char, tt.what)
			if tt.char == "\n" {
				want = strings.Replace(want, `'`+"\n"+`'`, `'\n'`, 1)
			}
			r := rita.direct("root", "db-1", tt.cmd)
			if r.code != 1 || r.stdout != "" || r.stderr != want {
				t.Fatalf("want exit 1 and %q, got %s", want, r)
			}
			if _, err := os.Stat(marker); !os.IsNotExist(err) {
				t.Fatalf("the escape ran: %s exists", marker)
			}
		})
	}
	t.Run("via ProxyJump", func(t *testing.T) {
		cmd := "echo hi; touch " + marker
		r := rita.run("ssh", "db-1", cmd)
		if r.code != 1 || !strings.Contains(r.stderr, syntax(cmd, ";", "command list")) {
			t.Fatalf("got %s", r)
		}
	})
	t.Run("not listed", func(t *testing.T) {
		r := rita.direct("root", "db-1", "touch "+marker)
		want := fmt.Sprintf("gatehouse: access denied: role runner allows only listed commands on db-1; %q is not one of them\r\n", "touch "+marker)
		if r.code != 1 || r.stderr != want {
			t.Fatalf("want %q, got %s", want, r)
		}
	})
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("an escape ran: %s exists", marker)
	}
	// Every refusal is in the audit log with the command as it was asked.
	evs, err := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionDenied, User: "rita"})
	if err != nil {
		t.Fatal(err)
	}
	asked := map[string]string{}
	for _, ev := range evs {
		if c, ok := ev.Details["command"].(string); ok {
			asked[c] = ev.Reason
		}
	}
	for _, tt := range escapes {
		if reason, ok := asked[tt.cmd]; !ok || !strings.HasPrefix(reason, "command refused: '") {
			t.Errorf("no audited refusal for %q (got %q)", tt.cmd, reason)
		}
	}
}

// TestAllowedCommandsRun checks the other side: listed commands run and their
// output arrives, quoted metacharacters are plain arguments, the one shell
// rule runs its pipeline, and the target's sshd itself was told the command
// (force-command in the certificate sets SSH_ORIGINAL_COMMAND; without one it
// is unset).
func TestAllowedCommandsRun(t *testing.T) {
	w := newWorld(t, "")
	rita := w.newUser("rita", time.Hour)
	probe := filepath.Join(w.dir, "probe")
	os.Mkdir(probe, 0o755)
	os.WriteFile(filepath.Join(probe, "seen-by-ls"), nil, 0o644)
	tests := []struct{ name, cmd, want string }{
		{"echo", "echo hello world", "hello world\n"},
		{"quoted metacharacters are literal", "echo 'a; touch b' \"|c\"", "a; touch b |c\n"},
		{"ls with further arguments", "ls " + probe + " -1", "seen-by-ls\n"},
		{"shell rule", "echo piped | tr a-z A-Z", "PIPED\n"},
		{"force-command reached the target", "printenv SSH_ORIGINAL_COMMAND", "printenv SSH_ORIGINAL_COMMAND\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rita.direct("root", "db-1", tt.cmd)
			if r.code != 0 || r.stdout != tt.want || r.stderr != "" {
				t.Fatalf("want %q, got %s", tt.want, r)
			}
		})
	}
	// A glob: rule lets the target's shell expand a glob that matches its
	// pattern; other globs stay refused.
	logs := filepath.Join(w.dir, "logs")
	os.Mkdir(logs, 0o755)
	for _, f := range []string{"a.log", "b.log", "c.txt"} {
		os.WriteFile(filepath.Join(logs, f), nil, 0o644)
	}
	if r := rita.direct("root", "db-1", "ls "+logs+"/*.log"); r.code != 0 || r.stdout != logs+"/a.log\n"+logs+"/b.log\n" {
		t.Fatalf("glob rule: %s", r)
	}
	want := fmt.Sprintf("gatehouse: access denied: command refused: argument %q is a glob the target's shell would expand (quote it to mean it literally) at byte %d; only plain arguments are allowed\r\n", logs+"/*", len("ls "+logs+"/"))
	if r := rita.direct("root", "db-1", "ls "+logs+"/*"); r.code != 1 || r.stderr != want {
		t.Fatalf("a glob outside the rule's pattern: want %q, got %s", want, r)
	}
	// With a terminal (ssh -t) the forced command runs in a pty.
	if r := rita.run("ssh", "-tt", "-p", w.port, "root@db-1@127.0.0.1", "echo in a tty"); r.code != 0 || !strings.Contains(r.stdout, "in a tty\r\n") {
		t.Fatalf("command with a pty: %s", r)
	}
	// A user without a command restriction gets a certificate without
	// force-command: the variable is unset there.
	alice := w.newUser("alice", time.Hour)
	if r := alice.direct("root", "db-1", "printenv SSH_ORIGINAL_COMMAND"); r.code != 1 || r.stdout != "" {
		t.Fatalf("unrestricted session saw a force-command: %s", r)
	}
	// The session start event names the rule and the force-command.
	evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionStart, User: "rita"})
	found := false
	for _, ev := range evs {
		found = found || (ev.Details["force_command"] == "echo hello world" && ev.Details["command_rule"] == "echo *")
	}
	if !found {
		t.Fatalf("no session.start with force_command and rule among %d events", len(evs))
	}
}

// TestCommandRoleGetsNoShellSFTPOrForwarding: a role limited to commands
// opens no shell, no sftp (scp/rsync over sftp) and no forwarding, although
// the same role sets sftp and port_forwarding.
func TestCommandRoleGetsNoShellSFTPOrForwarding(t *testing.T) {
	testenv.RequireBinary(t, "rsync", "apt-get install rsync")
	w := newWorld(t, "")
	rita := w.newUser("rita", time.Hour)
	want := "gatehouse: access denied: role runner allows only listed commands on db-1, not a shell or subsystem"
	if r := rita.direct("root", "db-1"); r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("shell: %s", r)
	}
	if r := rita.run("ssh", "-tt", "-p", w.port, "root@db-1@127.0.0.1"); r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("shell with a pty: %s", r)
	}
	if r := rita.run("ssh", "-s", "-p", w.port, "root@db-1@127.0.0.1", "sftp"); r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("sftp subsystem: %s", r)
	}
	src := filepath.Join(w.dir, "upload")
	os.WriteFile(src, []byte("x"), 0o644)
	dst := filepath.Join(w.dir, "uploaded")
	if r := rita.run("scp", "-P", w.port, src, "root@db-1@127.0.0.1:"+dst); r.code == 0 {
		t.Fatalf("scp: %s", r)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("scp wrote the file")
	}
	// Legacy scp and rsync run their server side as exec commands: not listed, so refused.
	if r := rita.run("scp", "-O", "-P", w.port, src, "root@db-1@127.0.0.1:"+dst); r.code == 0 ||
		!strings.Contains(r.stderr, fmt.Sprintf("role runner allows only listed commands on db-1; %q is not one of them", "scp -t "+dst)) {
		t.Fatalf("scp -O: %s", r)
	}
	if r := rita.run("rsync", src, "db-1:"+dst); r.code == 0 || !strings.Contains(r.stderr, "role runner allows only listed commands on db-1") {
		t.Fatalf("rsync: %s", r)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("a transfer over exec wrote the file")
	}
	// ssh -W asks for a direct-tcpip channel: refused like -L.
	r := rita.run("ssh", "-p", w.port, "-W", w.sshd.Addr, "root@db-1@127.0.0.1")
	if r.code == 0 || !strings.Contains(r.stderr, "port forwarding to "+w.sshd.Addr+" via db-1 is not allowed by your roles") {
		t.Fatalf("forwarding: %s", r)
	}
}

// TestControlMasterCommandsEachGetTheirOwnCertificate runs several commands
// over one ControlMaster connection: each allowed exec gets its own target
// connection and certificate with its own force-command; a refused one in
// between runs nothing and does not disturb the others.
func TestControlMasterCommandsEachGetTheirOwnCertificate(t *testing.T) {
	w := newWorld(t, "")
	rita := w.newUser("rita", time.Hour)
	sock := filepath.Join(w.dir, "cm")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	master := rita.cmd(ctx, "ssh", "-M", "-S", sock, "-N", "-p", w.port, "root@db-1@127.0.0.1")
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	defer master.Wait()
	defer rita.run("ssh", "-S", sock, "-O", "exit", "x")
	waitFor(t, "control socket", func() bool { _, err := os.Stat(sock); return err == nil })
	marker := filepath.Join(w.dir, "pwned")
	mux := func(cmd string) result {
		return rita.run("ssh", "-S", sock, "-o", "ControlMaster=no", "-p", w.port, "root@db-1@127.0.0.1", cmd)
	}
	if r := mux("echo one"); r.code != 0 || r.stdout != "one\n" {
		t.Fatalf("first: %s", r)
	}
	if r := mux("echo two; touch " + marker); r.code != 1 || !strings.Contains(r.stderr, "';' is shell syntax (command list)") {
		t.Fatalf("escape over the master: %s", r)
	}
	if r := mux("printenv SSH_ORIGINAL_COMMAND"); r.code != 0 || r.stdout != "printenv SSH_ORIGINAL_COMMAND\n" {
		t.Fatalf("third: %s", r)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("the escape ran over the master connection")
	}
	// Both sessions came over one client connection, each with its own
	// certificate naming its own force-command.
	evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionStart, User: "rita"})
	serials := map[string]string{}
	for _, ev := range evs {
		serials[fmt.Sprint(ev.Details["force_command"])] = fmt.Sprint(ev.Details["session_cert_serial"])
	}
	one, three := serials["echo one"], serials["printenv SSH_ORIGINAL_COMMAND"]
	if one == "" || three == "" || one == three || one == "0" {
		t.Fatalf("session certificates: %v", serials)
	}
	for _, id := range []string{one, three} {
		var kind string
		if err := w.app.Env.DB.QueryRow(`SELECT kind FROM certificates WHERE serial = ?`, id).Scan(&kind); err != nil || kind != "session" {
			t.Fatalf("certificate %s: %q %v", id, kind, err)
		}
	}
	conns := map[string]bool{}
	for _, ev := range evs {
		conns[strings.SplitN(ev.SessionID, "-", 2)[0]] = true
	}
	if len(conns) != 1 {
		t.Fatalf("want the sessions on one client connection, got %v", conns)
	}
}

// TestTargetEnforcesForceCommand takes the gateway out of the path: a
// session certificate minted with force-command `echo forced`, used directly
// against the real sshd for another command, still only prints "forced".
func TestTargetEnforcesForceCommand(t *testing.T) {
	w := newWorld(t, "")
	sc, err := w.app.Authority.MintSessionCert(context.Background(), auth.SessionCertRequest{
		User: "rita", SessionID: "direct-test", Login: "root", SourceAddress: "127.0.0.1", TTL: time.Minute,
		ForceCommand: "echo forced",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.Cert.CriticalOptions["force-command"]; got != "echo forced" {
		t.Fatalf("certificate force-command %q", got)
	}
	// The real sshd, reached with the certificate alone (no gateway).
	client, err := ssh.Dial("tcp", w.sshd.Addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(sc.Signer)},
		HostKeyCallback: ssh.FixedHostKey(w.sshd.HostKey), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(w.dir, "pwned")
	out, err := sess.Output("touch " + marker + "; echo not-forced")
	if err != nil || string(out) != "forced\n" {
		t.Fatalf("direct use of the certificate: %q %v", out, err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("the target ran the requested command instead of the forced one")
	}
}

// TestDenyCommandsStopExecLines: gina holds viewer (any command on db-1 as
// root) and guard (deny "rm -rf", "shutdown"; warn "echo warn-me *"). Each
// way of hiding rm -rf in an exec line is refused with its one-line reason
// and the file stays; other commands run; a warn rule lets its command run,
// audits command.warn and fires the webhook.
func TestDenyCommandsStopExecLines(t *testing.T) {
	secret := []byte("0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e")
	rv := startReceiver(t, secret)
	secretFile := filepath.Join(t.TempDir(), "alert-secret")
	os.WriteFile(secretFile, secret, 0o600)
	w := newWorldWith(t, "", fmt.Sprintf(`alerts:
  - name: warned
    events: [command.warn]
    webhook: "%s/warn"
    secret_file: %s
`, rv.url, secretFile))
	gina := w.newUser("gina", time.Hour)
	victim := filepath.Join(w.dir, "victim")
	os.MkdirAll(filepath.Join(victim, "x"), 0o755)
	x := filepath.Join(victim, "x")
	denied := func(part string) string {
		return fmt.Sprintf("gatehouse: access denied: role guard denies the command %q (rule \"rm -rf\")\r\n", part)
	}
	computed := func(line string) string {
		return fmt.Sprintf("gatehouse: access denied: role guard denies commands it cannot see: %q computes its program name ($(...), backticks or a variable)\r\n", line)
	}
	tests := []struct{ name, cmd, want string }{
		{"plain", "rm -rf " + x, denied("rm -rf " + x)},
		{"after true;", "true; rm -rf " + x, denied("rm -rf " + x)},
		{"after &&", "ls && rm -rf " + x, denied("rm -rf " + x)},
		{"in a pipe", "echo y | rm -rf " + x, denied("rm -rf " + x)},
		{"in backticks", "echo `rm -rf " + x + "`", denied("rm -rf " + x)},
		{"computed program", "$(echo rm) -rf " + x, computed("$(echo rm) -rf " + x)},
		{"sh -c", "sh -c 'rm -rf " + x + "'", denied("sh -c 'rm -rf " + x + "'")},
		{"quoted letters", "r''m -rf " + x, denied("r''m -rf " + x)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gina.direct("root", "db-1", tt.cmd)
			if r.code != 1 || r.stderr != tt.want {
				t.Fatalf("want %q, got %s", tt.want, r)
			}
			if _, err := os.Stat(x); err != nil {
				t.Fatalf("the deny did not hold: %v", err)
			}
		})
	}
	if r := gina.direct("root", "db-1", "ls "+victim); r.code != 0 || r.stdout != "x\n" {
		t.Fatalf("an ordinary command: %s", r)
	}
	if r := gina.direct("root", "db-1", "echo warn-me now"); r.code != 0 || r.stdout != "warn-me now\n" || r.stderr != "" {
		t.Fatalf("a warned command must run: %s", r)
	}
	evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventCommandWarn, User: "gina"})
	if len(evs) != 1 || evs[0].Reason != `role guard warns on the command "echo warn-me now" (rule "echo warn-me *")` ||
		evs[0].Details["command"] != "echo warn-me now" {
		t.Fatalf("command.warn events: %+v", evs)
	}
	waitFor(t, "the warn webhook", func() bool {
		for _, a := range rv.seen("/warn", 200) {
			if a.signatureOK && strings.Contains(string(a.body), "echo warn-me now") {
				return true
			}
		}
		return false
	})
}

// TestSFTPFalseDoesNotStopExecTransfers proves what docs/policy.md says
// options.sftp: false does not stop: bob (viewer: a shell on db-1, no sftp)
// is refused sftp and scp, yet `scp -O`, rsync and `cat >` over exec write
// files, because only allow.commands limits exec requests.
func TestSFTPFalseDoesNotStopExecTransfers(t *testing.T) {
	testenv.RequireBinary(t, "rsync", "apt-get install rsync")
	w := newWorld(t, "")
	bob := w.newUser("bob", time.Hour)
	src := filepath.Join(w.dir, "src")
	os.WriteFile(src, []byte("data\n"), 0o644)
	if r := bob.run("scp", "-P", w.port, src, "root@db-1@127.0.0.1:"+src+".sftp"); r.code == 0 ||
		!strings.Contains(r.stderr, "file transfer (sftp/scp) to db-1 is not allowed by your roles") {
		t.Fatalf("scp over sftp: %s", r)
	}
	for name, run := range map[string]func() result{
		"scp -O": func() result { return bob.run("scp", "-O", "-P", w.port, src, "root@db-1@127.0.0.1:"+src+".scp-O") },
		"rsync":  func() result { return bob.run("rsync", src, "db-1:"+src+".rsync") },
	} {
		if r := run(); r.code != 0 {
			t.Fatalf("%s: %s", name, r)
		}
	}
	c := bob.cmd(context.Background(), "ssh", "-p", w.port, "root@db-1@127.0.0.1", "cat > "+src+".cat")
	c.Stdin = strings.NewReader("data\n")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("cat >: %v %s", err, out)
	}
	for _, ext := range []string{".scp-O", ".rsync", ".cat"} {
		if b, err := os.ReadFile(src + ext); err != nil || string(b) != "data\n" {
			t.Fatalf("%s: %q %v", ext, b, err)
		}
	}
}

// TestContainerCommandRules: containers have no sshd to enforce a
// certificate, so the gateway runs the canonical rendering of the approved
// command itself; escapes are refused and run nothing inside the container.
func TestContainerCommandRules(t *testing.T) {
	d := testenv.RequireDocker(t)
	w := newWorld(t, "")
	rita := w.newUser("rita", time.Hour)
	alice := w.newUser("alice", time.Hour)
	pay := fmt.Sprintf("pay-cmd-%d", time.Now().UnixNano())
	d.RunContainer(t, pay, map[string]string{"team": "payments"})
	box := "docker:" + pay
	if r := rita.direct("root", box, "echo 'a;b' c"); r.code != 0 || r.stdout != "a;b c\n" {
		t.Fatalf("allowed command in the container: %s", r)
	}
	for _, cmd := range []string{"echo hi; touch /tmp/pwned", "echo $(touch /tmp/pwned)", "echo `touch /tmp/pwned`", "echo hi > /tmp/pwned"} {
		if r := rita.direct("root", box, cmd); r.code != 1 || !strings.HasPrefix(r.stderr, "gatehouse: access denied: command refused: ") {
			t.Fatalf("%q in the container: %s", cmd, r)
		}
	}
	if r := rita.direct("root", box); r.code != 1 || !strings.Contains(r.stderr, "role box-runner allows only listed commands on "+box+", not a shell or subsystem") {
		t.Fatalf("shell in the container: %s", r)
	}
	if r := alice.direct("root", box, "test -e /tmp/pwned; echo $?"); r.code != 0 || r.stdout != "1\n" {
		t.Fatalf("an escape ran in the container: %s", r)
	}
}

// TestCommandConnectionsAreCapped: each command of a restricted role has its
// own target connection, so one client connection may hold at most 10 at
// once (OpenSSH's MaxSessions default); the 11th is refused with a reason and
// audited, and a slot frees when a command ends.
func TestCommandConnectionsAreCapped(t *testing.T) {
	w := newWorld(t, "")
	rita := w.newUser("rita", time.Hour)
	sock := filepath.Join(w.dir, "cm")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	master := rita.cmd(ctx, "ssh", "-M", "-S", sock, "-N", "-p", w.port, "root@db-1@127.0.0.1")
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	defer master.Wait()
	defer rita.run("ssh", "-S", sock, "-O", "exit", "x")
	waitFor(t, "control socket", func() bool { _, err := os.Stat(sock); return err == nil })
	// Ten commands that each wait for one byte on stdin.
	var waiting []*exec.Cmd
	var stdins []io.WriteCloser
	defer func() {
		for _, c := range waiting {
			c.Process.Kill()
			c.Wait()
		}
	}()
	for i := 0; i < 10; i++ {
		c := rita.cmd(ctx, "ssh", "-S", sock, "-o", "ControlMaster=no", "-p", w.port, "root@db-1@127.0.0.1", "head -c 1")
		in, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		waiting, stdins = append(waiting, c), append(stdins, in)
	}
	waitFor(t, "ten running commands", func() bool {
		evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionStart, User: "rita"})
		return len(evs) == 10
	})
	mux := func(cmd string) result {
		return rita.run("ssh", "-S", sock, "-o", "ControlMaster=no", "-p", w.port, "root@db-1@127.0.0.1", cmd)
	}
	want := "gatehouse: too many commands running at once on this connection (at most 10); wait for one to end or open another connection\r\n"
	if r := mux("echo eleven"); r.code != 1 || r.stderr != want {
		t.Fatalf("the 11th command: want %q, got %s", want, r)
	}
	evs, _ := w.app.Audit.Query(context.Background(), audit.Filter{Type: audit.EventSessionDenied, User: "rita", Text: "too many commands"})
	if len(evs) != 1 {
		t.Fatalf("refusal audited %d times", len(evs))
	}
	// Another connection is not affected.
	if r := rita.direct("root", "db-1", "echo elsewhere"); r.code != 0 || r.stdout != "elsewhere\n" {
		t.Fatalf("a second connection: %s", r)
	}
	// One command ends: its slot is free again.
	stdins[0].Write([]byte("x"))
	if err := waiting[0].Wait(); err != nil {
		t.Fatalf("the first command: %v", err)
	}
	waiting = waiting[1:]
	waitFor(t, "a free slot", func() bool { return mux("echo again").stdout == "again\n" })
}
