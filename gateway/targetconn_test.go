package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestTargetIncomingRefused checks what a target gets when it asks the
// gateway for something on its own: a global request is refused, a channel
// open (here an X11 channel the gateway never asked for) is rejected as an
// unknown type, and the handler ends with the connection.
func TestTargetIncomingRefused(t *testing.T) {
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	scfg := &ssh.ServerConfig{NoClientAuth: true}
	scfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		replied bool
		openErr error
	}
	res := make(chan result, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			res <- result{openErr: err}
			return
		}
		sc, chans, reqs, err := ssh.NewServerConn(nc, scfg)
		if err != nil {
			res <- result{openErr: err}
			return
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			for nc := range chans {
				nc.Reject(ssh.Prohibited, "no")
			}
		}()
		ok, _, _ := sc.SendRequest("keepalive@openssh.com", true, nil)
		_, _, err = sc.OpenChannel("x11", nil)
		res <- result{replied: ok, openErr: err}
		sc.Close()
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, ln.Addr().String(), &ssh.ClientConfig{User: "u", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() {
		serveTargetIncoming(chans, reqs)
		close(ended)
	}()
	r := <-res
	if r.replied {
		t.Fatal("the target's global request was accepted")
	}
	var oe *ssh.OpenChannelError
	if !errors.As(r.openErr, &oe) || oe.Reason != ssh.UnknownChannelType {
		t.Fatalf("the target's channel open: %v, want it rejected as an unknown channel type", r.openErr)
	}
	conn.Wait()
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not end with the connection")
	}
}
