package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// shortTimeout sets -session-timeout for one test.
func shortTimeout(t *testing.T, d time.Duration) {
	old := *flagSessionTimeout
	*flagSessionTimeout = d
	t.Cleanup(func() { *flagSessionTimeout = old })
}

// within runs f and fails the test if it has not returned after a minute:
// the hang this guards against, not a speed assertion.
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the bench session hung")
		return nil
	}
}

func clientConfig() *ssh.ClientConfig {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := ssh.NewSignerFromKey(priv)
	return &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(s)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()}
}

// stuckServer accepts connections on loopback and hands each to serve.
func stuckServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// TestOneSessionFailsOnAStuckGateway: a port that accepts and never speaks
// SSH (another program on the gateway's port, a gateway stuck before its
// banner), and a gateway that completes the handshake and opens the session
// but never answers the exec, both end the session with the error telling
// the operator what to look at, instead of hanging the bench.
func TestOneSessionFailsOnAStuckGateway(t *testing.T) {
	shortTimeout(t, 300*time.Millisecond)
	silent := stuckServer(t, func(net.Conn) {})
	_, hpriv, _ := ed25519.GenerateKey(rand.Reader)
	hs, _ := ssh.NewSignerFromKey(hpriv)
	scfg := &ssh.ServerConfig{NoClientAuth: true, PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
		return nil, nil
	}}
	scfg.AddHostKey(hs)
	mute := stuckServer(t, func(c net.Conn) {
		_, chans, reqs, err := ssh.NewServerConn(c, scfg)
		if err != nil {
			return
		}
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			ch, creqs, err := nc.Accept()
			if err != nil {
				return
			}
			defer ch.Close()
			go func() {
				for r := range creqs { // the exec is accepted and never run
					r.Reply(true, nil)
				}
			}()
		}
	})
	for name, addr := range map[string]string{"silent port": silent, "exec never answered": mute} {
		err := within(t, func() error { return oneSession(addr, clientConfig()) })
		if err == nil || !strings.Contains(err.Error(), "did not finish within -session-timeout") ||
			!strings.Contains(err.Error(), addr) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestWaitListeningNamesTheCulprit: a port another process listens on is
// not taken for the bench's own server: when the server exits (it could not
// bind) the error says the port is held; a server that exits without
// listening says so; a listener this process holds counts as its own.
func TestWaitListeningNamesTheCulprit(t *testing.T) {
	shortTimeout(t, time.Minute)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	// Not waited for yet: a zombie, as a bench server that died is.
	for !exited(child.Process.Pid) {
		time.Sleep(10 * time.Millisecond)
	}
	err = within(t, func() error { return waitListening(held.Addr().String(), child.Process.Pid, "sshd target", "LOG") })
	if err == nil || !strings.Contains(err.Error(), "is held by another process") {
		t.Fatalf("a port held by another process: %v", err)
	}
	free, _ := freePort()
	err = within(t, func() error { return waitListening(free, child.Process.Pid, "sshd target", "LOG") })
	if err == nil || !strings.Contains(err.Error(), "exited before listening") {
		t.Fatalf("a server that exited: %v", err)
	}
	owned, _, err := listenerOf(os.Getpid(), held.Addr().String())
	if err != nil || !owned {
		t.Fatalf("this process's own listener not found: %v %v", owned, err)
	}
}
