package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// A stuck gateway, or a port another process answers on, must fail the
// bench with a line saying so, not hang it: every session the bench opens
// itself has a deadline, and the ports it gives its own listeners are
// picked where no client connection and no other listener of this bench
// can take them.

var flagSessionTimeout = flag.Duration("session-timeout", 30*time.Second,
	"longest time one bench session (connect, handshake, run) or one wait for output may take before the bench fails")

// errStuck explains a session that ran past its deadline.
func errStuck(addr, what string, err error) error {
	return fmt.Errorf("%s through %s did not finish within -session-timeout %v (%v): the gateway is stuck or another "+
		"process answers on its port; run with -keep and read gatehouse.log in the bench directory", what, addr, *flagSessionTimeout, err)
}

// dialDeadline connects to the SSH server at addr with the whole of
// connect and handshake bounded by deadline, which stays set on the
// connection (clear it with conn.SetDeadline(time.Time{}) to keep the
// client open longer).
func dialDeadline(addr string, cfg *ssh.ClientConfig, deadline time.Time) (*ssh.Client, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(deadline)
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return ssh.NewClient(c, chans, reqs), conn, nil
}

// oneSession opens a connection, runs `true` and closes it, all within
// -session-timeout.
func oneSession(addr string, cfg *ssh.ClientConfig) error {
	deadline := time.Now().Add(*flagSessionTimeout)
	err := runOne(addr, cfg, deadline)
	if err != nil && !time.Now().Before(deadline) {
		return errStuck(addr, "a session", err)
	}
	return err
}

func runOne(addr string, cfg *ssh.ClientConfig, deadline time.Time) error {
	c, _, err := dialDeadline(addr, cfg, deadline)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run("true")
}

// freePort is where the bench's listeners go: below the kernel's ephemeral
// range, where the bench's own client connections (tens of thousands in a
// rate run) take their source ports (testenv.FreePort).
func freePort() (string, error) { return testenv.FreePort() }

// waitListening waits until process pid listens on addr. It fails as soon
// as the process exited (saying so when another process holds the port:
// it was taken between freePort and the bind), and after -session-timeout,
// naming log.
func waitListening(addr string, pid int, name, log string) error {
	deadline := time.Now().Add(*flagSessionTimeout)
	for {
		owned, held, err := listenerOf(pid, addr)
		switch {
		case err != nil:
			return err
		case owned:
			return nil
		case exited(pid) && held:
			return fmt.Errorf("%s is held by another process: %s (pid %d) could not listen there and exited; run again, see %s", addr, name, pid, log)
		case exited(pid):
			return fmt.Errorf("%s (pid %d) exited before listening on %s; see %s", name, pid, addr, log)
		case time.Now().After(deadline):
			return fmt.Errorf("%s (pid %d) did not listen on %s within -session-timeout %v (held by another process: %v); see %s",
				name, pid, addr, *flagSessionTimeout, held, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited reports whether process pid has ended (a zombie not yet waited
// for counts).
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// listenerOf reports whether a TCP socket listens on addr (IPv4) and
// whether process pid holds it, from /proc/net/tcp and /proc/PID/fd.
func listenerOf(pid int, addr string) (owned, held bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, false, err
	}
	p, _ := strconv.Atoi(port)
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return false, false, fmt.Errorf("%s is not an IPv4 address", addr)
	}
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], p)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, false, err
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == local && f[3] == "0A" { // 0A: LISTEN
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return false, false, nil
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && inodes[l] {
			return true, true, nil
		}
	}
	return false, true, nil
}
