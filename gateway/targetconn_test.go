package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestTargetIncomingRefused checks what a target gets when it asks the
// gateway for something on its own: a global request is refused, a channel
// open (here an X11 channel the gateway never asked for) is rejected as an
// unknown type, and the handler ends with the connection.
func TestTargetIncomingRefused(t *testing.T) {
	conn, chans, reqs, sc, schans, sreqs := sshPair(t)
	go ssh.DiscardRequests(sreqs)
	go rejectChannels(schans)
	ended := make(chan struct{})
	go func() {
		serveTargetIncoming(chans, reqs)
		close(ended)
	}()
	if ok, _, _ := sc.SendRequest("keepalive@openssh.com", true, nil); ok {
		t.Fatal("the target's global request was accepted")
	}
	_, _, err := sc.OpenChannel("x11", nil)
	var oe *ssh.OpenChannelError
	if !errors.As(err, &oe) || oe.Reason != ssh.UnknownChannelType {
		t.Fatalf("the target's channel open: %v, want it rejected as an unknown channel type", err)
	}
	sc.Close()
	conn.Wait()
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not end with the connection")
	}
}

// sshPair connects an x/crypto client and server over loopback TCP.
func sshPair(t *testing.T) (client ssh.Conn, cchans <-chan ssh.NewChannel, creqs <-chan *ssh.Request,
	server ssh.Conn, schans <-chan ssh.NewChannel, sreqs <-chan *ssh.Request) {
	t.Helper()
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
	type srv struct {
		sc    *ssh.ServerConn
		chans <-chan ssh.NewChannel
		reqs  <-chan *ssh.Request
		err   error
	}
	done := make(chan srv, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- srv{err: err}
			return
		}
		sc, chans, reqs, err := ssh.NewServerConn(nc, scfg)
		done <- srv{sc, chans, reqs, err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client, cchans, creqs, err = ssh.NewClientConn(nc, ln.Addr().String(), &ssh.ClientConfig{User: "u", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Cleanup(func() { client.Close(); s.sc.Close() })
	return client, cchans, creqs, s.sc, s.chans, s.reqs
}

// TestServeIncomingAnswersBothConnections checks the client connection's one
// loop: the client's channel opens reach dispatch and its global requests
// reach global (and get their reply); the shared target connection's own
// global requests and channel opens, once it is handed over, are refused as
// before; and the loop ends when the client connection closes, handing back
// the target's still-open channels to drain.
func TestServeIncomingAnswersBothConnections(t *testing.T) {
	// The user's client and the gateway's server side of it.
	user, uchans, ureqs, gwServer, chans, reqs := sshPair(t)
	go ssh.DiscardRequests(ureqs)
	go rejectChannels(uchans)
	// The gateway's client side of the target connection, and the target.
	_, tchans, treqs, target, schans, sreqs := sshPair(t)
	go ssh.DiscardRequests(sreqs)
	go rejectChannels(schans)

	targetIn := make(chan targetIncoming, 1)
	var mu sync.Mutex
	var globals []string
	type result struct {
		rest   targetIncoming
		unread bool
	}
	ended := make(chan result, 1)
	go serveIncoming(chans, reqs, targetIn, nil, func(nc ssh.NewChannel) {
		// dispatch must not block: answer from a goroutine.
		go nc.Reject(ssh.ResourceShortage, "dispatched "+nc.ChannelType())
	}, func(r *ssh.Request) {
		mu.Lock()
		globals = append(globals, r.Type)
		mu.Unlock()
		if r.WantReply {
			r.Reply(r.Type == "keepalive@openssh.com", nil)
		}
	}, nil, func(rest targetIncoming, unread bool, _ *sessionReqs) { ended <- result{rest, unread} })

	// The client's global request and channel open, before the target is up.
	if ok, _, err := user.SendRequest("keepalive@openssh.com", true, nil); err != nil || !ok {
		t.Fatalf("client keepalive: ok=%v err=%v, want the global handler's reply true", ok, err)
	}
	_, _, err := user.OpenChannel("session", nil)
	var oe *ssh.OpenChannelError
	if !errors.As(err, &oe) || oe.Message != "dispatched session" {
		t.Fatalf("client channel open: %v, want it dispatched", err)
	}

	// The target connection comes up; the target asks on its own.
	targetIn <- targetIncoming{tchans, treqs}
	if ok, _, err := target.SendRequest("keepalive@openssh.com", true, nil); err != nil || ok {
		t.Fatalf("target's global request: ok=%v err=%v, want it refused", ok, err)
	}
	_, _, err = target.OpenChannel("x11", nil)
	if !errors.As(err, &oe) || oe.Reason != ssh.UnknownChannelType {
		t.Fatalf("target's channel open: %v, want it rejected as an unknown channel type", err)
	}
	// The client still gets answers after the target's were served.
	if ok, _, err := user.SendRequest("tcpip-forward", true, nil); err != nil || ok {
		t.Fatalf("client tcpip-forward: ok=%v err=%v, want the global handler's refusal", ok, err)
	}
	mu.Lock()
	got := strings.Join(globals, ",")
	mu.Unlock()
	if got != "keepalive@openssh.com,tcpip-forward" {
		t.Fatalf("global handler saw %q, want the client's two requests only", got)
	}

	user.Close()
	gwServer.Wait()
	var r result
	select {
	case r = <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the loop did not end with the client connection")
	}
	if r.unread || r.rest.chans == nil || r.rest.reqs == nil {
		t.Fatalf("loop ended with unread=%v rest=%+v, want the target's channels handed back", r.unread, r.rest)
	}
	// Whoever drains them next still refuses the target.
	go serveTargetIncoming(r.rest.chans, r.rest.reqs)
	if ok, _, err := target.SendRequest("keepalive@openssh.com", true, nil); err != nil || ok {
		t.Fatalf("target's global request after the client left: ok=%v err=%v, want it refused", ok, err)
	}
}

// TestServeIncomingTargetNeverDialled checks that a loop whose target
// connection never came reports it, so serve drains a late one.
func TestServeIncomingTargetNeverDialled(t *testing.T) {
	user, _, _, gwServer, chans, reqs := sshPair(t)
	targetIn := make(chan targetIncoming, 1)
	ended := make(chan bool, 1)
	go serveIncoming(chans, reqs, targetIn, nil, func(nc ssh.NewChannel) { go nc.Reject(ssh.Prohibited, "no") },
		func(r *ssh.Request) { r.Reply(false, nil) }, nil,
		func(_ targetIncoming, unread bool, _ *sessionReqs) { ended <- unread })
	user.Close()
	gwServer.Wait()
	select {
	case unread := <-ended:
		if !unread {
			t.Fatal("the loop reported the target's incoming as read, want unread")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the loop did not end with the client connection")
	}
}

// rejectChannels refuses every channel open that arrives on chans.
func rejectChannels(chans <-chan ssh.NewChannel) {
	for nc := range chans {
		nc.Reject(ssh.Prohibited, "no")
	}
}
