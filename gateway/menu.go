package gateway

import (
	"fmt"
	"io"
	"net"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"
)

// menu answers a session on a connection without a target: it prints the
// targets this user may reach, how to address them, and exits 0.
func (c *clientConn) menu(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	for r := range reqs {
		switch r.Type {
		case "shell", "exec":
			r.Reply(true, nil)
			c.writeMenu(ch)
			ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{0}))
			ch.CloseWrite()
			return
		case "pty-req", "env", "window-change":
			r.Reply(true, nil)
		default:
			r.Reply(false, nil)
		}
	}
}

// writeMenu prints the reachable targets; lines end in CRLF so they look
// right whether or not the client asked for a terminal.
func (c *clientConn) writeMenu(w io.Writer) {
	type row struct{ name, logins, labels, login string }
	var rows []row
	for _, t := range c.s.targetList() {
		pt := t.Policy()
		if t.Kind == "docker" && t.Container == "" {
			pt.Name = "docker:*"
		}
		logins := c.s.cfg.Policy.Logins(c.pr.User, c.pr.Groups, pt)
		if len(logins) == 0 {
			continue
		}
		rows = append(rows, row{pt.Name, strings.Join(logins, ","), formatLabels(t.Labels), logins[0]})
	}
	fmt.Fprintf(w, "Gatehouse: signed in as %s\r\n", c.pr.User)
	if len(rows) == 0 {
		fmt.Fprintf(w, "You may not reach any target yet: ask an administrator for a role.\r\n")
		return
	}
	fmt.Fprintf(w, "Targets you may reach:\r\n")
	fmt.Fprintf(w, "  %-24s %-24s %s\r\n", "TARGET", "LOGINS", "LABELS")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-24s %-24s %s\r\n", r.name, r.logins, r.labels)
	}
	for _, r := range rows {
		if !strings.Contains(r.name, "*") {
			c.writeConnectHint(w, r.login, r.name)
			return
		}
	}
}

// writeConnectHint prints ready-to-paste commands for one target, with the
// gateway address this client connected to and its own user name.
func (c *clientConn) writeConnectHint(w io.Writer, login, target string) {
	host, port, err := net.SplitHostPort(c.sc.LocalAddr().String())
	if err != nil {
		return
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	fmt.Fprintf(w, "Connect with, for example:\r\n")
	fmt.Fprintf(w, "  ssh -p %s %s@%s@%s\r\n", port, login, target, host)
	fmt.Fprintf(w, "  ssh -J %s@%s:%s %s@%s\r\n", c.sc.User(), host, port, login, target)
}

func formatLabels(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
