package gateway

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// maxWriteConn records the largest single write to the connection: for the
// inner connection of a ProxyJump, each write becomes at least one packet
// of the outer direct-tcpip channel.
type maxWriteConn struct {
	net.Conn
	mu  sync.Mutex
	max int
}

func (c *maxWriteConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.max = max(c.max, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestJumpChunksFitOuterPackets sends 1 MiB of session output the way the
// gateway writes to a ProxyJump client (chacha20-poly1305, the client
// cipher of the benchmarks) and checks every inner SSH packet still fits one
// 32 KiB outer channel packet, and that the bytes arrive whole.
func TestJumpChunksFitOuterPackets(t *testing.T) {
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	scfg := &ssh.ServerConfig{NoClientAuth: true}
	scfg.AddHostKey(signer)
	scfg.Ciphers = []string{"chacha20-poly1305@openssh.com"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	srvConn := &maxWriteConn{Conn: a}
	want := make([]byte, 1<<20)
	rand.Read(want)
	srvErr := make(chan error, 1)
	go func() {
		sc, chans, reqs, err := ssh.NewServerConn(srvConn, scfg)
		if err != nil {
			srvErr <- err
			return
		}
		defer sc.Close()
		go ssh.DiscardRequests(reqs)
		nc := <-chans
		ch, creqs, err := nc.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		go ssh.DiscardRequests(creqs)
		// The relay's buffer grows to 128 KiB under bulk output.
		for p := want; len(p) > 0; p = p[min(len(p), 128<<10):] {
			if _, err := writeJumpChunks(ch, p[:min(len(p), 128<<10)]); err != nil {
				srvErr <- err
				return
			}
		}
		ch.CloseWrite()
		io.Copy(io.Discard, ch) // until the client closes the channel
		srvErr <- nil
	}()
	cc, chans, reqs, err := ssh.NewClientConn(b, "inner", &ssh.ClientConfig{User: "u", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	ch, creqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(creqs)
	got, err := io.ReadAll(ch)
	if err != nil {
		t.Fatal(err)
	}
	ch.Close()
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, not the %d sent", len(got), len(want))
	}
	srvConn.mu.Lock()
	defer srvConn.mu.Unlock()
	if srvConn.max > 32<<10 {
		t.Fatalf("an inner packet of %d bytes does not fit one 32 KiB outer packet", srvConn.max)
	}
}
